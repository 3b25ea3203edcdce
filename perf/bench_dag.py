"""How fast Snakemake plans the DAG at FMA's real sizes.

Builds a scratch working directory whose outputs stand in for a finished run of fma_small
(8,000 tracks) and of fma_large (106,574 tracks) - the real number of tracks spread over the
real 156 folders - then times, for each:
  1. `snakemake -n results/metrics.json` after the subset table exists, with every later stage
     to do (the planner reads the subset table to find the shards);
  2. `snakemake results/metrics.json` when everything is up to date ("Nothing to be done").
Goals: (1) under 10 s for fma_small and 30 s for fma_large; (2) under 10 s.

Usage: python perf/bench_dag.py [--check] [--results FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "src"))

from fma_genre.io.layout import shard_of  # noqa: E402

from record import add_results_argument, write_results  # noqa: E402

SIZES = {"small": 8_000, "large": 106_574}
GOALS = {"plan": {"small": 10.0, "large": 30.0}, "nothing_to_do": 10.0}


def track_ids(n: int) -> list[int]:
    """`n` ids spread evenly over FMA's id range (folders 000 to 155)."""
    return [2 + i * (155_300 // n) for i in range(n)]


def touch(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fake_finished_run(workdir: Path, subset: str, n_tracks: int) -> None:
    """Every output of the DAG, written in DAG order so that each is newer than its inputs."""
    ids = track_ids(n_tracks)
    shards = sorted({shard_of(t) for t in ids})
    for name in ("fma_metadata", f"fma_{subset}"):
        touch(workdir / f"data/raw/{name}.zip")
    touch(workdir / "data/raw/fma_metadata/tracks.csv")
    for shard in shards:
        (workdir / f"data/raw/fma_{subset}/{shard}").mkdir(parents=True, exist_ok=True)
    time.sleep(0.05)
    rows = "".join(f"{t},training,Rock,12,12,data/raw/fma_{subset}/x.mp3,30\n" for t in ids)
    touch(
        workdir / f"data/processed/{subset}_subset.csv",
        "track_id,split,genre_top,genres,genres_all,audio_path,duration\n" + rows,
    )
    time.sleep(0.05)
    touch(workdir / f"data/processed/{subset}_subset_multihot.csv")
    touch(workdir / "data/processed/unified_genres.txt")
    for shard in shards:
        (workdir / f"data/processed/fma_features/fma_{subset}/{shard}").mkdir(parents=True, exist_ok=True)
        touch(workdir / f"data/processed/fma_features/fma_{subset}/{shard}.status.csv")
    (workdir / "data/models/facebook--w2v-bert-2.0").mkdir(parents=True, exist_ok=True)
    time.sleep(0.05)
    touch(workdir / "data/processed/final_feature_manifest.csv")
    time.sleep(0.05)
    run = workdir / "results/experiments/default/seed0"  # config.yaml: one experiment, one seed
    (run / "model").mkdir(parents=True, exist_ok=True)
    touch(run / "training_log.csv")
    touch(workdir / "results/baseline_scores.csv")
    touch(workdir / "results/baseline_summary.json")
    time.sleep(0.05)
    touch(run / "test_scores.csv")
    (workdir / "results/model").mkdir(parents=True, exist_ok=True)
    time.sleep(0.05)
    for name in ("confusion_matrix.png", "training_curves.png"):
        touch(run / name)
    time.sleep(0.05)
    for name in ("metrics.json", "predictions.csv"):
        touch(run / name)
    time.sleep(0.05)
    for name in ("metrics.json", "experiments.csv", "experiments.png", "predictions.csv"):
        touch(workdir / "results" / name)


def timed_snakemake(workdir: Path, subset: str, *args: str) -> tuple[float, str]:
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
        "results/metrics.json",
        *args,
        "--config",
        f"subset={subset}",  # last: --config takes every following word
    ]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, result.stdout + result.stderr


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    add_results_argument(parser, "bench_dag")
    args = parser.parse_args()
    missed, measured = [], {}
    for subset, n_tracks in SIZES.items():
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-dag-{subset}-"))
        try:
            fake_finished_run(workdir, subset, n_tracks)
            up_to_date, output = timed_snakemake(workdir, subset)
            assert "Nothing to be done" in output, output
            os.utime(workdir / f"data/processed/{subset}_subset.csv")  # every later stage is stale
            plan, output = timed_snakemake(workdir, subset, "-n")
            assert "log_mel_shard" in output, output
        finally:
            shutil.rmtree(workdir)
        print(
            f"fma_{subset} ({n_tracks} tracks): plan with every stage to do {plan:.1f} s "
            f"(goal {GOALS['plan'][subset]:.0f} s), nothing to do {up_to_date:.1f} s "
            f"(goal {GOALS['nothing_to_do']:.0f} s)"
        )
        measured[f"fma_{subset}"] = dict(
            tracks=n_tracks,
            plan_seconds=plan,
            nothing_to_do_seconds=up_to_date,
            goal_plan_seconds=GOALS["plan"][subset],
            goal_nothing_to_do_seconds=GOALS["nothing_to_do"],
        )
        if plan > GOALS["plan"][subset] or up_to_date > GOALS["nothing_to_do"]:
            missed.append(subset)
    write_results(args.results, "bench_dag", measured)
    if args.check and missed:
        print(f"goal missed for: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
