"""The workflow is `snakefmt` formatted and `snakemake --lint` clean."""

import subprocess
import sys
from pathlib import Path

from paths import PROJECT_ROOT

BIN = Path(sys.executable).parent


def test_snakefmt_check():
    result = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/"],
        cwd=PROJECT_ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_lint_has_no_findings():
    for config in ("config/config.yaml", "config/demo.yaml"):
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", "--lint", "--configfile", config],
            cwd=PROJECT_ROOT, capture_output=True, text=True,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "Lints for" not in output, output
        assert "Congratulations, your workflow is in a good condition!" in output
