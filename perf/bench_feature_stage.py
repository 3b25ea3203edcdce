"""The log-mel stage run by Snakemake with --cores 1, against an in-process loop over the same tracks.

    .venv/bin/python perf/bench_feature_stage.py [--check] [--folders N] [--per-folder N] [MP3]

Lays out N folders of M tracks each (51 per folder is fma_small's average; each track a link to
the same real clip), then times, side by side in one run:
  loop       fma_genre.features.shard.extract_track over every track in this process (one core)
  snakemake  `snakemake --cores 1` running one log_mel_shard job per folder: Snakemake's own
             planning, and each job's interpreter start-up and imports, all count
Also printed: the shard jobs alone (Snakemake's benchmark of each job, so without Snakemake's
own start and planning, a fixed ~1.5 s that more folders amortise).
Goal: snakemake / loop <= 1.3. With --check a missed goal exits 1.
"""

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import argparse  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from fma_genre.features.shard import extract_track  # noqa: E402
from fma_genre.io.layout import audio_relpath  # noqa: E402

from record import add_results_argument, write_results  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_CLIP = PROJECT_ROOT.parent / "shared" / "fma-samples" / "fma_small" / "000" / "000002.mp3"
MAX_STAGE_OVER_LOOP = 1.3


def lay_out(workdir: Path, clip: Path, folders: int, per_folder: int) -> list[int]:
    """A subset table and an extracted fma_small folder as the earlier stages leave them."""
    track_ids = [folder * 1000 + i for folder in range(folders) for i in range(per_folder)]
    rows = ["track_id,split,genre_top,genres,genres_all,audio_path,duration"]
    for track_id in track_ids:
        audio = workdir / "data/raw/fma_small" / audio_relpath(track_id)
        audio.parent.mkdir(parents=True, exist_ok=True)
        audio.symlink_to(clip)
        rows.append(f"{track_id},training,Hip-Hop,21,21,data/raw/fma_small/{audio_relpath(track_id)},30")
    table = workdir / "data/processed/small_subset.csv"
    table.parent.mkdir(parents=True)
    table.write_text("\n".join(rows) + "\n")
    return track_ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", type=Path, default=SHARED_CLIP)
    parser.add_argument("--folders", type=int, default=8)
    parser.add_argument("--per-folder", type=int, default=51)
    parser.add_argument("--check", action="store_true", help="exit 1 if the goal is missed")
    add_results_argument(parser, "bench_feature_stage")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-feature-stage-"))
    try:
        track_ids = lay_out(workdir, args.clip.resolve(), args.folders, args.per_folder)
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core for both, children too

        start = time.perf_counter()
        for track_id in track_ids:
            extract_track(
                workdir / "data/raw/fma_small" / audio_relpath(track_id),
                workdir / f"loop/{track_id:06d}.npy",
                5.0,
            )
        loop = time.perf_counter() - start

        targets = [f"data/processed/fma_features/fma_small/{f:03d}.status.csv" for f in range(args.folders)]
        command = [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(PROJECT_ROOT / "Snakefile"),
            "--directory",
            str(workdir),
            "--cores",
            "1",
            *targets,
            "--config",
            "feature_threads=1",
        ]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        stage = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"snakemake failed:\n{result.stdout}\n{result.stderr}")
        job_seconds = sum(
            float(
                (workdir / f"benchmarks/log_mel_shard/small/{f:03d}.tsv")
                .read_text()
                .splitlines()[1]
                .split()[0]
            )
            for f in range(args.folders)
        )
    finally:
        shutil.rmtree(workdir)
    n = len(track_ids)
    print(f"{n} tracks in {args.folders} folders, one core")
    print(f"  loop       {loop:6.2f} s  ({1000 * loop / n:.1f} ms/track)")
    print(f"  snakemake  {stage:6.2f} s  ({1000 * stage / n:.1f} ms/track; jobs alone {job_seconds:.2f} s)")
    print(
        f"  snakemake / loop = {stage / loop:.2f} (goal <= {MAX_STAGE_OVER_LOOP}); "
        f"the shard jobs alone / loop = {job_seconds / loop:.2f}"
    )
    write_results(
        args.results,
        "bench_feature_stage",
        dict(
            tracks=n,
            folders=args.folders,
            loop_seconds=loop,
            snakemake_seconds=stage,
            shard_jobs_seconds=job_seconds,
            snakemake_over_loop=stage / loop,
            shard_jobs_over_loop=job_seconds / loop,
            goal_snakemake_over_loop=MAX_STAGE_OVER_LOOP,
        ),
    )
    if args.check and stage / loop > MAX_STAGE_OVER_LOOP:
        print("goal missed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
