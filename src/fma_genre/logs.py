"""Send a rule script's stderr (tracebacks, tqdm bars) and log records to the rule's log file."""

from __future__ import annotations

import logging
import sys


def log_to(path: str) -> None:
    """Redirect stderr to `path` (line-buffered, so progress shows while the job runs)."""
    sys.stderr = open(path, "w", buffering=1)  # noqa: SIM115 - lives as long as the job
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
