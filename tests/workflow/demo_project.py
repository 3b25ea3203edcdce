"""Run the project's Snakemake workflow on the demo in a scratch copy of the project.

The copy (Snakefile, workflow/, scripts/, src/, config/, envs/) lets a test edit a stage's code
without touching the checkout; the copy's rules import the copied package (common.smk puts its
src/ first on PYTHONPATH).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from paths import PROJECT_ROOT

PROJECT_PARTS = ("Snakefile", "workflow", "scripts", "src", "config", "envs")
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def copy_project(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for part in PROJECT_PARTS:
        source = PROJECT_ROOT / part
        if source.is_dir():
            shutil.copytree(source, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, dest / part)
    return dest


def snakemake_command(
    project: Path, workdir: Path, *args: str, config: str = "config/demo.yaml"
) -> list[str]:
    """The command line of the project copy's workflow in `workdir` (2 cores unless `args` say)."""
    return [
        *SNAKEMAKE, "--snakefile", str(project / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(project / config), "--cores", "2", *args,
    ]  # fmt: skip


def snakemake(
    project: Path,
    workdir: Path,
    *args: str,
    config: str = "config/demo.yaml",
    check: bool = True,
    timeout: int = 900,
) -> subprocess.CompletedProcess:
    command = snakemake_command(project, workdir, *args, config=config)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def planned_jobs(project: Path, workdir: Path, target: str, *args: str) -> dict[str, int]:
    """The rules (with job counts) that `snakemake -n` would run for `target`."""
    result = snakemake(project, workdir, "-n", target, *args)
    output = result.stdout + result.stderr
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    return {
        rule: int(count)
        for rule, count in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)
        if rule != "total"
    }
