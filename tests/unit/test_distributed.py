"""Training and scoring in several processes (gloo on CPU, started by torchrun's launcher): the
same training and scores as one process, resumable after SIGTERM, and a dead process fails the
run instead of hanging it."""

import dataclasses
import logging
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

from fma_genre.runtime.processes import launch, run_as_job
from fma_genre.scoring.job import write_split_scores
from fma_genre.training import resume
from fma_genre.training.loop import train

from training_defaults import training_settings
from unit.test_train import SETTINGS, THREADS, TIMING_COLUMNS

TESTS = Path(__file__).resolve().parents[1]
EPOCHS = 3
# One micro-batch of 2 per process and step: the random masks are the same for 1 and 2 processes.
DISTRIBUTED = training_settings(epochs=EPOCHS, **SETTINGS, micro_batch_size=2)
# Two processes add their gradients in another order than one process's accumulation.
TOLERANCE = dict(rtol=1e-5, atol=1e-6)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def training_arguments(dataset, out: Path) -> dict:
    manifest, vocabulary, tiny = dataset
    return dict(
        manifest_csv=str(manifest),
        vocabulary_tsv=str(vocabulary),
        pretrained_dir=str(tiny),
        model_out_dir=str(out / "model"),
        training_log_csv=str(out / "training_log.csv"),
        state_dir=str(out / "state"),
        tensorboard_dir=str(out / "tensorboard"),
        settings=DISTRIBUTED,
        threads=THREADS,
    )


@pytest.fixture(scope="module")
def one_process(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one_process")
    train(**training_arguments(dataset, out))
    return out


def assert_same_training(out: Path, reference: Path, tolerance: dict = TOLERANCE) -> None:
    logs = [
        pd.read_csv(folder / "training_log.csv").drop(columns=TIMING_COLUMNS) for folder in (out, reference)
    ]
    assert len(logs[0]) == EPOCHS
    pd.testing.assert_frame_equal(*logs, check_exact=False, **tolerance)
    weights = [load_file(folder / "model" / "model.safetensors") for folder in (out, reference)]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], **tolerance, msg=name)


def stop_by_sigterm(arguments: dict, processes: int, rank: int, forward: int, log: Path) -> None:
    """Train in `processes` launched processes until SIGTERM reaches `rank` at its `forward`-th
    training forward pass (the caller puts tests/ on PYTHONPATH): they all stop and checkpoint."""
    with pytest.raises(ChildFailedError):
        launch(
            "unit.launched_training:train_with_fault",
            arguments | dict(fault="sigterm", rank=rank, forward=forward),
            processes,
            log,
        )


def test_two_processes_train_like_one(dataset, one_process, tmp_path):
    # As the train rule runs it with `resources: cpu_processes=2` and two threads.
    run_as_job(train, training_arguments(dataset, tmp_path), {"cpu_processes": 2}, 2, tmp_path / "train.log")
    assert_same_training(tmp_path, one_process)
    log = (tmp_path / "train.log").read_text()
    assert "x 2 processes, micro-batches of 2" in log and "rank 0" in log
    assert not list((tmp_path / "state").glob("*"))  # the state went once the model was written


def test_a_two_process_run_stopped_by_sigterm_in_one_process_resumes_like_one(
    dataset, one_process, tmp_path, monkeypatch
):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    arguments = training_arguments(dataset, tmp_path)
    # SIGTERM reaches process 1 only, in step 4 (epoch 2 of 3 steps each): both stop after it.
    stop_by_sigterm(arguments, processes=2, rank=1, forward=4, log=tmp_path / "first.log")
    first = (tmp_path / "first.log").read_text()
    stopped = re.findall(
        r"WARNING rank (\d) fma_genre.training.run_state: SIGTERM: stopped at step 4 \(epoch 2\)", first
    )
    assert sorted(stopped) == ["0", "1"], first[-3000:]
    launch("fma_genre.training.loop:train", arguments, 2, tmp_path / "resumed.log")
    assert "resuming: 1 epochs and 1 batches of the next done" in (tmp_path / "resumed.log").read_text()
    assert_same_training(tmp_path, one_process)


def test_a_process_that_dies_fails_the_run_instead_of_hanging_it(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    started = time.monotonic()
    with pytest.raises(ChildFailedError) as failure:
        launch(
            "unit.launched_training:train_with_fault",
            training_arguments(dataset, tmp_path) | dict(fault="exit", rank=1, forward=2),
            2,
            tmp_path / "train.log",
        )
    assert time.monotonic() - started < 120
    assert "exitcode" in str(failure.value) and not (tmp_path / "model").exists()


def test_three_processes_deal_a_batch_of_five_unevenly_and_train_like_one(dataset, tmp_path):
    """Batch 5 on 3 processes: micro-batches of 2, 2 and 1 (the default, 5 / 3 rounded up); the
    last step, of 2 tracks, leaves two processes a stand-in of weight 0. The same as one process
    with micro-batches of 2."""
    uneven = dataclasses.replace(DISTRIBUTED, batch_size=5, micro_batch_size=None)
    reference = tmp_path / "one"
    train(
        **training_arguments(dataset, reference)
        | dict(settings=dataclasses.replace(uneven, micro_batch_size=2))
    )
    three = tmp_path / "three"
    three.mkdir()
    run_as_job(
        train,
        training_arguments(dataset, three) | dict(settings=uneven),
        {"cpu_processes": 3},
        3,
        three / "train.log",
    )
    assert "x 3 processes, micro-batches of 2" in (three / "train.log").read_text()
    assert_same_training(three, reference, dict(rtol=1e-4, atol=1e-5))  # three-way sums


def test_a_two_process_run_resumes_on_fewer_devices_with_the_default_micro_batch(
    dataset, tmp_path, monkeypatch, caplog
):
    """Stopped by SIGTERM in 2 processes (micro-batches of 2), rerun in 1 (micro-batches of 4):
    it resumes from the checkpoint, says what changed, and finishes."""
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    arguments = training_arguments(dataset, tmp_path) | dict(
        settings=dataclasses.replace(DISTRIBUTED, micro_batch_size=None)
    )
    stop_by_sigterm(arguments, processes=2, rank=0, forward=4, log=tmp_path / "first.log")
    with caplog.at_level(logging.INFO):
        train(**arguments)
    resumed = caplog.text
    assert "resuming: 1 epochs and 1 batches of the next done" in resumed, resumed[-3000:]
    assert "saved by 2 processes, resumed by 1" in resumed
    assert "micro-batches of 4 now, 2 before" in resumed
    log = pd.read_csv(tmp_path / "training_log.csv")
    assert len(log) == EPOCHS and (tmp_path / "model" / "model.safetensors").exists()


def test_a_one_process_run_resumes_on_three(dataset, one_process, tmp_path, monkeypatch):
    """1 -> 3 processes with micro-batches of 2: the same training as never stopped."""
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    arguments = training_arguments(dataset, tmp_path)
    stop_by_sigterm(arguments, processes=1, rank=0, forward=7, log=tmp_path / "first.log")
    launch("fma_genre.training.loop:train", arguments, 3, tmp_path / "resumed.log")
    resumed = (tmp_path / "resumed.log").read_text()
    assert "saved by 1 processes, resumed by 3" in resumed, resumed[-3000:]
    assert_same_training(tmp_path, one_process)


def test_two_processes_score_a_split_like_one(dataset, one_process, tmp_path):
    manifest, vocabulary, _ = dataset
    arguments = dict(
        model_dir=str(one_process / "model"),
        manifest_csv=str(manifest),
        split="validation",
        vocabulary_tsv=str(vocabulary),
        batch_size=2,
        threads=1,
    )
    write_split_scores(**arguments, scores_csv=str(tmp_path / "one.csv"))
    launch(
        "fma_genre.scoring.job:write_split_scores",
        arguments | dict(scores_csv=str(tmp_path / "two.csv")),
        2,
        tmp_path / "score.log",
    )
    one, two = (pd.read_csv(tmp_path / name) for name in ("one.csv", "two.csv"))
    assert len(one) == 6  # every validation track, in track order
    pd.testing.assert_frame_equal(two, one, check_exact=False, rtol=1e-6)
    assert "x 2 processes" in (tmp_path / "score.log").read_text()


def test_a_state_saved_with_more_gpus_resumes_on_fewer_devices(tmp_path, monkeypatch):
    """A state written by an 8-GPU run of an earlier version holds 8 CUDA RNG states; restoring
    them per device raises IndexError with 1 GPU visible (simulated here as torch does). They are
    not restored (every micro-batch reseeds the GPUs): the CPU and numpy states are."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)

    def set_rng_state_all(states):
        for device, _ in enumerate(states):
            if device >= torch.cuda.device_count():
                raise IndexError("list index out of range")

    monkeypatch.setattr(torch.cuda, "set_rng_state_all", set_rng_state_all)
    torch.manual_seed(3)
    np.random.seed(3)
    saved = resume.rng_states()
    assert "cuda" not in saved  # nothing per device is written any more
    expected = (torch.rand(3), np.random.rand(3))
    torch.save(saved | {"cuda": [torch.get_rng_state()] * 8}, tmp_path / "rng.pt")
    resume.set_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))
    restored = (torch.rand(3), np.random.rand(3))
    assert torch.equal(restored[0], expected[0]) and np.array_equal(restored[1], expected[1])
