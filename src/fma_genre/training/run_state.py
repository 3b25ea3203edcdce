"""A training run's state: the model, optimiser, schedule and data; where the run stands
(`Progress`); and its checkpoints (`resume.py`), written by the main process of several."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from fma_genre.data.vocabulary import Vocabulary
from fma_genre.features.crops import frames_of
from fma_genre.features.splits import SplitTracks
from fma_genre.runtime.processes import Processes, barrier
from fma_genre.training import resume
from fma_genre.training.probe import PooledWindows, head_logits
from fma_genre.training.settings import TrainingSettings

log = logging.getLogger(__name__)


class TrainingInterrupted(RuntimeError):
    """SIGTERM arrived: the state is saved and the same call resumes the run."""


def interrupted(where: str, state_dir: Path) -> TrainingInterrupted:
    """The exception to stop with after SIGTERM, logged too (the log outlives the traceback)."""
    message = f"SIGTERM: stopped {where}; the state in {state_dir} resumes the run"
    log.warning(message)
    return TrainingInterrupted(message)


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[threading.Event]:
    """An event set by SIGTERM (SLURM's warning before the time limit) instead of dying at once."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class Progress:
    """Everything a resumed run needs besides the model, optimiser, scheduler and RNG states."""

    epochs_done: int = 0
    step: int = 0
    # The unfinished epoch, when a checkpoint was written inside it.
    batches_done: int = 0
    epoch_loss_sum: float = 0.0
    epoch_clips: int = 0
    epoch_train_seconds: float = 0.0
    # Model selection and early stopping.
    best_metric: float = -math.inf
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    training_seconds: float = 0.0  # epochs including validation
    train_seconds: float = 0.0  # training steps only
    clips_trained: int = 0
    log_rows: list[dict] = field(default_factory=list)


@dataclass
class TrainingRun:
    """One training run: the model and its optimiser, the data, and where the run stands."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    loss_fn: torch.nn.Module
    training: SplitTracks
    validation: SplitTracks
    vocabulary: Vocabulary
    settings: TrainingSettings  # its micro-batch size resolved for the processes
    device: torch.device
    state_dir: Path
    key: dict
    progress: Progress = field(default_factory=Progress)
    best_validation_scores: torch.Tensor | None = None  # (tracks, labels), for the thresholds
    # Mode probe: the training and validation windows as the head sees them.
    cache: tuple[PooledWindows, PooledWindows] | None = None
    processes: Processes = Processes()
    # Several processes (finetune, lora): the model wrapped for DDP's gradient averaging. A probe
    # head trains on the whole batch in every process instead: it is tiny, and all stay equal.
    ddp: DistributedDataParallel | None = None
    forward: torch.nn.Module | None = None  # the model as training calls it (DDP, compiled)

    @property
    def crop_frames(self) -> int:
        """Frames in a training crop, and in a scoring window."""
        return frames_of(self.settings.crop_seconds)

    def out_of_patience(self) -> bool:
        return self.progress.epochs_without_improvement >= self.settings.patience

    def logits(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The model's logits of a batch: log-mel windows, or (probe) cached pooled layers."""
        inputs = {name: tensor.to(self.device) for name, tensor in inputs.items()}
        if "layers" in inputs:
            return head_logits(self.model, inputs["layers"])
        # `is None`: a compiled module has no truth value
        return (self.model if self.forward is None else self.forward)(**inputs).logits

    def resume(self) -> None:
        state = resume.load_state(self.state_dir, self.key)
        if state is None:  # the old state, if any, is replaced by this run's first checkpoint
            return
        resume.load_trained_weights(self.model, state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        resume.set_rng_states(state["rng"])
        self.progress = Progress(**state["progress"])
        self.best_validation_scores = state["best_validation_scores"]
        log.info(
            "resuming: %d epochs and %d batches of the next done",
            self.progress.epochs_done,
            self.progress.batches_done,
        )

    def save_checkpoint(self) -> None:
        """The main process writes the state; the others wait until it is on disk."""
        if not self.processes.is_main:
            barrier(self.processes)
            return
        resume.save_state(
            self.state_dir,
            dict(
                key=self.key,
                model=resume.trained_weights(self.model),
                optimizer=self.optimizer.state_dict(),
                scheduler=self.scheduler.state_dict(),
                rng=resume.rng_states(),
                progress=asdict(self.progress),
                best_validation_scores=self.best_validation_scores,
            ),
        )
        resume.keep_only_best(self.state_dir, self.progress.best_epoch)
        barrier(self.processes)

    def learning_rate(self, part: str) -> float:
        return next((g["lr"] for g in self.optimizer.param_groups if g["part"] == part), 0.0)
