"""The workflow is `snakefmt` formatted and `snakemake --lint` clean; the Python is `ruff`
formatted and `ruff check` clean (package, scripts, tests, perf)."""

import subprocess
import sys
from pathlib import Path

import pytest

from paths import PROJECT_ROOT

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["snakefmt", "--check", "Snakefile", "workflow/"],
        ["ruff", "format", "--check", "."],
        ["ruff", "check", "--no-fix", "."],
    ],
    ids=["snakefmt", "ruff-format", "ruff-check"],
)
def test_formatted_and_lint_clean(command):
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_lint_has_no_findings():
    for config in ("config/config.yaml", "config/demo.yaml"):
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", "--lint", "--configfile", config],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "Lints for" not in output, output
        assert "Congratulations, your workflow is in a good condition!" in output
