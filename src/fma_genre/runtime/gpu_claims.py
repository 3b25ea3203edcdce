"""One GPU per job on a machine with several: each training or scoring job claims its own.

Local Snakemake counts a `gpu` resource but assigns no device (snakemake/snakemake#281), so four
jobs "in parallel" would all compute on `cuda:0`. A job claims `gpu` devices instead: a lock
file per GPU index in a folder per host (`flock`, which the kernel releases when the process
exits, even by kill -9), waits while fewer are free, and shows its processes only those
(`CUDA_VISIBLE_DEVICES`). Under SLURM the scheduler has assigned the job's GPUs already: they are
used as they are.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_DIR_VARIABLE = "FMA_GENRE_GPU_LOCK_DIR"  # where the lock files are (default: per host, in /tmp)
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # one entry per GPU; read without starting CUDA
WAIT_SECONDS = 1.0


@dataclass
class GpuClaim:
    """The GPU indices a job holds, with their open lock files (closing them releases the GPUs)."""

    indices: list[str]
    files: list

    def release(self) -> None:
        for file in self.files:
            file.close()
        self.files = []


def lock_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"fma_genre-gpu-claims-{os.getuid()}"
    return Path(os.environ.get(LOCK_DIR_VARIABLE, default))


def gpu_pool(environ=os.environ) -> list[str] | None:
    """The GPU indices this host's jobs share, or None when the job's GPUs are assigned already
    (SLURM) or there are none: the user's CUDA_VISIBLE_DEVICES if set, else every GPU the driver
    lists."""
    if "SLURM_JOB_ID" in environ:
        return None
    if "CUDA_VISIBLE_DEVICES" in environ:
        pool = [index for index in environ["CUDA_VISIBLE_DEVICES"].split(",") if index.strip()]
    else:
        pool = [str(i) for i in range(len(list(NVIDIA_GPUS.glob("*"))))] if NVIDIA_GPUS.is_dir() else []
    return pool or None


def try_claim(count: int, pool: Sequence[str], folder: Path) -> GpuClaim | None:
    """`count` free GPUs of `pool`, locked; None (nothing held) when fewer are free."""
    folder.mkdir(parents=True, exist_ok=True)
    claim = GpuClaim([], [])
    for index in pool:
        file = open(folder / f"gpu{index}.lock", "w")  # noqa: SIM115 - held as long as the claim
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            continue
        claim.indices.append(index)
        claim.files.append(file)
        if len(claim.indices) == count:
            return claim
    claim.release()
    return None


def claim_gpus(count: int, pool: Sequence[str], folder: Path | None = None) -> GpuClaim:
    """`count` GPUs of `pool`, waiting (and saying so) until that many are free."""
    if count > len(pool):
        raise ValueError(f"the job asks for {count} GPUs (resources: gpu) and this host has {len(pool)}")
    folder = folder or lock_dir()
    waited = False
    while (claim := try_claim(count, pool, folder)) is None:
        if not waited:
            log.info("waiting for %d of GPUs %s to be free (locks in %s)", count, ",".join(pool), folder)
            waited = True
        time.sleep(WAIT_SECONDS)
    return claim


def claim_for_job(count: int) -> GpuClaim | None:
    """The job's `count` GPUs on this host (CUDA_VISIBLE_DEVICES set to them, logged); None when
    it claims none (no GPU here, `gpu: 0`, or SLURM's assignment applies). Call before anything
    starts CUDA: the variable is read then."""
    pool = gpu_pool()
    if pool is None or count < 1:
        return None
    claim = claim_gpus(count, pool)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(claim.indices)
    log.info("claimed GPU %s of %s on this host", ",".join(claim.indices), ",".join(pool))
    return claim
