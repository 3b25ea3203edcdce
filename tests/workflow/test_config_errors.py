"""A wrong config stops the run before any job starts, naming the key."""

import subprocess
import sys

import pytest

from paths import PROJECT_ROOT


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("unknown_key: 1\n", "'unknown_key' was unexpected"),
        ("min_clip_seconds: soon\n", "On instance['min_clip_seconds']"),
        ("training:\n  selection_metric: hamming\n", "On instance['training']['selection_metric']"),
        ("subset: tiny\n", "On instance['subset']"),
        ("seeds: [0, 0]\n", "On instance['seeds']"),
        # An experiment's overrides are `training` keys, checked like them.
        ("experiments:\n  fast:\n    lr_hed: 0.1\n", "config experiments.fast: unknown key 'lr_hed'"),
        (
            "experiments:\n  fast:\n    mode: frozen\n",
            "config experiments.fast.mode: 'frozen' is not one of ['finetune', 'probe', 'lora']",
        ),
    ],
)
def test_wrong_config_stops_before_any_job_naming_the_key(tmp_path, override, named):
    config = tmp_path / "wrong.yaml"
    config.write_text(override)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(PROJECT_ROOT / "Snakefile"),
            "--directory",
            str(tmp_path / "work"),
            "--cores",
            "1",
            "results/metrics.json",
            "--configfile",
            str(PROJECT_ROOT / "config/demo.yaml"),
            str(config),
        ],
        capture_output=True,
        text=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0 and named in output
    assert not (tmp_path / "work" / "data").exists() and not (tmp_path / "work" / "logs").exists()
