"""A training target for `runtime.processes.launch` in the tests: one process meets a fault (SIGTERM,
or sudden death) at its n-th training forward pass."""

import os
import signal

import pytest

from fma_genre.training import loop as train_module

from unit.test_train import crash_on_training_forward

FAULTS = {"sigterm": lambda: os.kill(os.getpid(), signal.SIGTERM), "exit": lambda: os._exit(3)}


def train_with_fault(fault: str, rank: int, forward: int, **kwargs) -> None:
    if int(os.environ["RANK"]) == rank:
        crash_on_training_forward(pytest.MonkeyPatch(), forward, FAULTS[fault])
    train_module.train(**kwargs)
