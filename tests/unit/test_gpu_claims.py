"""Jobs on one multi-GPU host each claim their own GPUs (simulated devices: no GPU here)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from fma_genre.runtime import gpu_claims
from fma_genre.runtime.gpu_claims import claim_for_job, claim_gpus, gpu_pool

POOL = ["0", "1", "2", "3"]
CLAIMANT = """
import sys
from pathlib import Path
from fma_genre.runtime.gpu_claims import claim_gpus
claim = claim_gpus(1, sys.argv[1].split(","), Path(sys.argv[2]))
print(",".join(claim.indices), flush=True)
sys.stdin.read()  # holds the claim until killed
"""


def start_claimant(folder) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CLAIMANT, ",".join(POOL), str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_device_claim_gives_four_jobs_four_gpus_and_a_fifth_waits_for_one_killed(tmp_path):
    jobs = [start_claimant(tmp_path) for _ in POOL]
    try:
        claimed = [job.stdout.readline().strip() for job in jobs]
        assert sorted(claimed) == POOL
        fifth = start_claimant(tmp_path)
        jobs.append(fifth)
        time.sleep(3)
        assert fifth.poll() is None
        os.set_blocking(fifth.stdout.fileno(), False)
        assert fifth.stdout.readline() == ""  # still waiting: every GPU is held
        os.set_blocking(fifth.stdout.fileno(), True)
        jobs[1].send_signal(signal.SIGKILL)  # no clean-up: the kernel releases its lock
        jobs[1].wait()
        started = time.monotonic()
        assert fifth.stdout.readline().strip() == claimed[1]
        assert time.monotonic() - started < 10
    finally:
        for job in jobs:
            job.kill()
            job.wait()


def test_device_claim_of_several_gpus_for_one_job_and_what_its_processes_see(tmp_path, monkeypatch):
    monkeypatch.setenv(gpu_claims.LOCK_DIR_VARIABLE, str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", ",".join(POOL))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    first = claim_for_job(2)
    assert first.indices == ["0", "1"] and os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", ",".join(POOL))  # the next job's environment
    second = claim_for_job(2)
    assert second.indices == ["2", "3"] and os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"
    first.release()
    assert claim_gpus(1, POOL, tmp_path).indices == ["0"]
    with pytest.raises(ValueError, match="asks for 5 GPUs .* this host has 4"):
        claim_gpus(5, POOL, tmp_path)


def test_device_claim_leaves_slurm_jobs_and_gpu_less_hosts_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_claims, "NVIDIA_GPUS", tmp_path / "gpus")
    assert gpu_pool({}) is None  # no driver: the CPU
    for address in ("0000:17:00.0", "0000:65:00.0", "0000:ca:00.0", "0000:e3:00.0"):
        (tmp_path / "gpus" / address).mkdir(parents=True)
    assert gpu_pool({}) == POOL
    assert gpu_pool({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert gpu_pool({"CUDA_VISIBLE_DEVICES": ""}) is None  # the user hid every GPU
    assert gpu_pool({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "1"}) is None  # assigned already
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert claim_for_job(1) is None and os.environ["CUDA_VISIBLE_DEVICES"] == "1"
