"""Where the benchmark scripts write what they measured: perf/results/<script>.json, with the
machine and the day, so that no figure of a machine is typed into the docs by hand."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import sys
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def add_results_argument(parser: argparse.ArgumentParser, script: str) -> None:
    default = RESULTS_DIR / f"{script}.json"
    parser.add_argument(
        "--results",
        type=Path,
        default=default,
        help=f"JSON file to write the measurements to (default {default})",
    )


def machine() -> dict:
    """What the figures depend on: the CPU, its cores here, the GPU if any, the torch build."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            cpu,
        )
    description = dict(cpu=cpu, cpus=len(os.sched_getaffinity(0)), python=platform.python_version())
    try:
        import torch
    except ImportError:
        return description
    description["torch"] = torch.__version__
    if torch.cuda.is_available():
        description["gpu"] = torch.cuda.get_device_name()
    return description


def peak_rss_bytes() -> int:
    """This process's peak resident memory: the kernel's high-water mark of its address space
    (VmHWM). Not getrusage's ru_maxrss, which a process started by fork and exec inherits
    from its parent's size at the fork."""
    status = Path("/proc/self/status")
    if status.exists():
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def write_results(path: Path, script: str, measured: dict) -> None:
    record = dict(
        script=f"perf/{script}.py", date=datetime.date.today().isoformat(), machine=machine(), **measured
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {path}", file=sys.stderr)
