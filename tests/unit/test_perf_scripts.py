"""The benchmark and rehearsal scripts of perf/ in their quick modes: they run, measure what
they say and write it down, so that none of them rots before the machine it is for."""

import json
import re
import subprocess
import sys

import pytest

from paths import PROJECT_ROOT


def run_script(*arguments: str, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


def test_benchmark_quick_run_prints_and_records_the_ratios(tmp_path):
    result = run_script(
        "perf/bench_training.py",
        "--quick",
        "--threads",
        "1",
        "--results",
        str(tmp_path / "r.json"),
        timeout=600,
    )
    assert re.search(
        r"\(1\) loader: .*\d+ with 0 workers, \d+ with 1 workers, \d+ with 2 workers", result.stdout
    )
    speed_up = float(re.search(r"speed-up ([\d.]+)x", result.stdout).group(1))
    memory_ratio = float(re.search(r"memory ratio fast/stock ([\d.]+)", result.stdout).group(1))
    logit_difference = float(re.search(r"max logit difference (\S+)", result.stdout).group(1))
    assert speed_up > 0 and 0 < memory_ratio < 1 and logit_difference < 1e-5
    assert re.search(r"\(3\) tiny model training on CPU.*: [\d.]+ clips/s", result.stdout)
    recorded = json.loads((tmp_path / "r.json").read_text())
    assert recorded["script"] == "perf/bench_training.py" and recorded["machine"]["cpus"] >= 1
    assert recorded["relative_key_bias"]["speed_up"] == pytest.approx(speed_up, abs=0.01)
    assert set(recorded["loader_crops_per_second_by_workers"]) == {"0", "1", "2"}
    assert all(rate > 0 for rate in recorded["loader_crops_per_second_by_workers"].values())


def test_full_size_rehearsal_runs_the_same_path_on_the_tiny_model(tmp_path):
    """perf/rehearse_full_size.py (the 581 M-parameter rehearsal) on the tiny architecture."""
    result = run_script(
        "perf/rehearse_full_size.py",
        "--tiny",
        "--threads",
        "1",
        "--processes",
        "2",
        "--probe-tracks",
        "100",
        "400",
        "--results",
        str(tmp_path / "r.json"),
        timeout=300,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["architecture"] == "tiny" and report["parameters"] > 100_000
    assert report["training_step_crop_shape"] == [2, 500, 160]
    # model + AdamW's moments, once each, plus the small rest (pickle framing, RNG, progress)
    assert report["model_plus_adamw_bytes"] < report["resume_state_bytes"]
    assert report["resume_state_bytes"] <= 1.05 * report["model_plus_adamw_bytes"] + 200_000
    for key in (
        "seconds_per_training_step",
        "resume_state_write_seconds",
        "resume_state_load_seconds",
        "scoring_windows_per_second",
        "peak_rss_bytes",
        "best_weights_bytes",
    ):
        assert report[key] > 0, key
    # 1 and 2 processes, with and without gradient checkpointing: each process's peak memory.
    runs = {(run["processes"], run["gradient_checkpointing"]): run for run in report["scaling"]}
    assert set(runs) == {(1, False), (1, True), (2, False), (2, True)}
    for (processes, _), run in runs.items():
        assert run["clips_per_second"] > 0 and len(run["per_process_peak_rss_bytes"]) == processes
        assert run["scaling_efficiency"] > 0  # timings of tiny runs on a busy machine: no bound above
    assert runs[(1, False)]["scaling_efficiency"] == 1.0
    # Two processes resuming the saved state; probe trainings from caches of 100 and 400 tracks.
    assert len(report["resume_in_2_processes_peak_rss_bytes"]) == 2
    assert all(rss > 0 for rss in report["resume_in_2_processes_peak_rss_bytes"])
    probes = report["probe"]["runs"]
    assert [probe["training_tracks"] for probe in probes] == [100, 400]
    # 3 windows per track, each 3 layers x 64 floats in float16 (the tiny model) and its track's
    # index (int64); the files' headers and the index.
    windows = 3 * (400 + 400 // 8)
    assert windows * (3 * 64 * 2 + 8) < probes[1]["probe_cache_bytes"] < windows * (3 * 64 * 2 + 8) + 10_000
    assert all(probe["probe_peak_rss_bytes"] > 0 for probe in probes)
    assert "rss_growth_over_cache_growth" in report["probe"]
    cost = report["checkpoint_seconds_per_hour"]
    assert cost["every_epoch"] > cost["every_checkpoint_minutes"] > 0
    assert json.loads((tmp_path / "r.json").read_text())["parameters"] == report["parameters"]


def test_gpu_check_runs_on_the_cpu_without_cuda_and_writes_every_key(tmp_path):
    """perf/gpu_check.py without CUDA: the tiny model through the same code, and a smaller demo."""
    out = tmp_path / "check.json"
    run_script("perf/gpu_check.py", "--out", str(out), timeout=240)
    check = json.loads(out.read_text())
    for key in ("training_clips_per_second", "peak_memory_bytes", "scoring_windows_per_second"):
        assert check[key] > 0, key
    assert check["device"].startswith("CPU") and check["mfu"] is None
    assert check["script"] == "perf/gpu_check.py" and check["seconds"] > 0
    assert set(check["loader_crops_per_second"]) == {"0", "1"}
    assert all(rate > 0 for rate in check["loader_crops_per_second"].values())
    variants = {(v["gradient_checkpointing"], v["compile"]): v for v in check["training"]}
    assert set(variants) == {(False, False), (True, False), (False, "aot_eager"), (True, "aot_eager")}
    for variant in variants.values():
        assert variant["clips_per_second"] > 0 and variant["model_flops_per_clip"] > 0, variant
    assert variants[(False, False)]["model_flops_per_clip"] == variants[(True, False)]["model_flops_per_clip"]
    demo = check["demo_two_epochs"]
    assert demo["gpu"] is None and [e["epoch"] for e in demo["cpu"]["epochs"]] == [1, 2]
    assert 0 < demo["cpu"]["epochs"][-1]["val_mAP"] <= 1
