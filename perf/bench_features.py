"""Time the feature stage per track on one core, against the seed's way and against decoding alone.

    .venv/bin/python perf/bench_features.py [--check] [--repetitions N] [MP3 ...]

Side by side, on the same files, in one run:
  seed    librosa.load(path, sr=16000) + SeamlessM4TFeatureExtractor + np.save
  ours    fma_genre.features.shard.extract_track: MP3 to a saved float16 .npy, as the stage runs it
  decode  soundfile.read(path): the part of "ours" that no feature code can speed up

Goals: seed / ours >= 2.0 and ours / decode <= 1.6. With --check a missed goal exits 1.
"""

import os

# One core, before numpy and torch load their thread pools.
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import soundfile  # noqa: E402
import torch  # noqa: E402
from transformers import SeamlessM4TFeatureExtractor  # noqa: E402

from fma_genre.features.shard import extract_track  # noqa: E402

from record import add_results_argument, write_results  # noqa: E402

torch.set_num_threads(1)

SHARED_CLIP = (
    Path(__file__).resolve().parents[2] / "shared" / "fma-samples" / "fma_small" / "000" / "000002.mp3"
)
MIN_SEED_OVER_OURS = 2.0
MAX_OURS_OVER_DECODE = 1.6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "paths", nargs="*", type=Path, default=[SHARED_CLIP], help="MP3 files (default: the shared real clip)"
    )
    parser.add_argument("--repetitions", type=int, default=7, help="timed passes over the files (default 7)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    add_results_argument(parser, "bench_features")
    args = parser.parse_args()

    extractor = SeamlessM4TFeatureExtractor(
        feature_size=80, num_mel_bins=80, sampling_rate=16000, padding_value=1, stride=2
    )
    with tempfile.TemporaryDirectory() as out_dir:
        seed_npy, ours_npy = Path(out_dir, "seed.npy"), Path(out_dir, "ours.npy")

        def seed(path: Path) -> None:
            waveform, _ = librosa.load(path, sr=16000)
            np.save(
                seed_npy, extractor(waveform, sampling_rate=16000, return_tensors="np")["input_features"][0]
            )

        def ours(path: Path) -> None:
            extract_track(path, ours_npy, min_clip_seconds=0.0)

        def decode(path: Path) -> None:
            soundfile.read(path)

        methods = {"seed": seed, "ours": ours, "decode": decode}
        seconds = {name: [] for name in methods}
        for repetition in range(args.repetitions + 1):  # the first pass warms caches and lazy imports
            for path in args.paths:
                # Interleaved, so that a noisy moment on the machine hits all three alike.
                for name, method in methods.items():
                    start = time.perf_counter()
                    method(path)
                    if repetition:
                        seconds[name].append(time.perf_counter() - start)

    ms = {name: 1000 * statistics.median(times) for name, times in seconds.items()}
    seed_over_ours = ms["seed"] / ms["ours"]
    ours_over_decode = ms["ours"] / ms["decode"]
    print(f"{len(args.paths)} file(s) x {args.repetitions} repetitions, one core, median ms per track:")
    for name, value in ms.items():
        print(f"  {name:<6} {value:8.1f} ms")
    print(f"  seed / ours   = {seed_over_ours:.2f}  (goal >= {MIN_SEED_OVER_OURS})")
    print(f"  ours / decode = {ours_over_decode:.2f}  (goal <= {MAX_OURS_OVER_DECODE})")

    write_results(
        args.results,
        "bench_features",
        dict(
            files=[path.name for path in args.paths],
            repetitions=args.repetitions,
            median_ms_per_track=ms,
            seed_over_ours=seed_over_ours,
            ours_over_decode=ours_over_decode,
            goal_seed_over_ours=MIN_SEED_OVER_OURS,
            goal_ours_over_decode=MAX_OURS_OVER_DECODE,
        ),
    )
    missed = []
    if seed_over_ours < MIN_SEED_OVER_OURS:
        missed.append(f"seed / ours {seed_over_ours:.2f} < {MIN_SEED_OVER_OURS}")
    if ours_over_decode > MAX_OURS_OVER_DECODE:
        missed.append(f"ours / decode {ours_over_decode:.2f} > {MAX_OURS_OVER_DECODE}")
    if args.check and missed:
        print("goal missed: " + "; ".join(missed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
