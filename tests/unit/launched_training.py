"""Targets for `runtime.processes.launch` in the tests: a training in which one process meets a
fault (SIGTERM, or sudden death) at its n-th training forward pass; a probe cache in small shards."""

import os
import signal

import pytest

from fma_genre.training import loop as train_module
from fma_genre.training import probe_cache

from unit.test_train import crash_on_training_forward

FAULTS = {"sigterm": lambda: os.kill(os.getpid(), signal.SIGTERM), "exit": lambda: os._exit(3)}


def train_with_fault(fault: str, rank: int, forward: int, **kwargs) -> None:
    if int(os.environ["RANK"]) == rank:
        crash_on_training_forward(pytest.MonkeyPatch(), forward, FAULTS[fault])
    train_module.train(**kwargs)


def write_probe_cache_in_shards(shard_windows: int, **kwargs) -> None:
    probe_cache.SHARD_WINDOWS = shard_windows
    probe_cache.write_probe_cache(**kwargs)
