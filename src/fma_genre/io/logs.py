"""Send a rule script's stderr (tracebacks, tqdm bars) and log records to the rule's log file."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_to(path: str, echo: bool = False) -> None:
    """Redirect stderr to `path` (line-buffered, so progress shows while the job runs).

    `echo`: log records also go to the job's own stderr. Snakemake empties the rule's log before
    each attempt; in a SLURM job that stderr is the plugin's log of this very attempt, so a run
    resumed after a time limit keeps the story of every attempt there.
    """
    job_stderr = sys.stderr
    sys.stderr = open(path, "w", buffering=1)  # noqa: SIM115 - lives as long as the job
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=FORMAT, force=True)
    if echo:
        echo_handler = logging.StreamHandler(job_stderr)
        echo_handler.setFormatter(logging.Formatter(FORMAT))
        logging.getLogger().addHandler(echo_handler)
