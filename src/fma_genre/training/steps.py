"""One epoch of optimiser steps, as nanoGPT's loop reads: batch -> micro-batches -> loss ->
step -> log -> checkpoint.

A step's batch (`batch_size` crops) is cut into micro-batches dealt to the training processes;
each adds the gradient of its micro-batches, DDP averages them over the processes, and the step
is that of the whole batch's mean loss, whatever the number of processes.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from fma_genre.features.crops import Window, random_crops
from fma_genre.runtime.devices import autocast
from fma_genre.runtime.processes import Processes, any_process, sum_over_processes
from fma_genre.training.probe import one_window_per_track
from fma_genre.training.run_log import RunLog
from fma_genre.training.run_state import TrainingRun, interrupted

LOG_EVERY_STEPS = 10


@dataclass
class MicroBatch:
    """A piece of an optimiser step's batch, as one process computes it."""

    inputs: dict[str, torch.Tensor]
    tracks: torch.Tensor  # track indices
    index: int  # in its step: with the step, it seeds the micro-batch's random masks
    weight: float = 1.0  # 0: a stand-in that only keeps a process in step with the others


def process_share(step_windows: list[Window], micro_batch_size: int, processes: Processes):
    """This process's micro-batches of one step, as (windows, index, weight): the step's
    micro-batches dealt round the processes. Every process gets as many, so that each takes part
    in every gradient exchange: one short of a micro-batch (a short last step) repeats the step's
    first with weight 0."""
    chunks = [step_windows[i : i + micro_batch_size] for i in range(0, len(step_windows), micro_batch_size)]
    per_process = math.ceil(len(chunks) / processes.world_size)
    mine = [(chunks[i], i, 1.0) for i in range(processes.rank, len(chunks), processes.world_size)]
    return mine + [(chunks[0], 0, 0.0)] * (per_process - len(mine))


def crop_steps(run: TrainingRun, epoch: int) -> Iterator[tuple[list[MicroBatch], int]]:
    """The epoch's remaining optimiser steps, as (this process's micro-batches, tracks in the
    step's whole batch): one random crop per track, the same whatever the number of processes."""
    batch_size = run.settings.batch_size
    # The epoch's crops derive from (seed, epoch) alone, so a resumed epoch gets the same.
    crops = random_crops(
        run.training.n_frames, run.crop_frames, np.random.default_rng([run.settings.seed, epoch])
    )
    steps = [
        crops[start : start + batch_size]
        for start in range(run.progress.batches_done * batch_size, len(crops), batch_size)
    ]
    shares = [process_share(step, run.settings.micro_batch_size, run.processes) for step in steps]
    pieces = [piece for share in shares for piece in share]
    loaded = run.training_loader.batches(
        [window for windows, _, _ in pieces for window in windows], [len(windows) for windows, _, _ in pieces]
    )
    for step, share in zip(steps, shares):
        micro_batches = []
        for _, index, weight in share:
            features, mask, tracks = next(loaded)
            micro_batches.append(
                MicroBatch({"input_features": features, "attention_mask": mask}, tracks, index, weight)
            )
        yield micro_batches, len(step)


def cached_window_steps(run: TrainingRun, epoch: int) -> Iterator[tuple[list[MicroBatch], int]]:
    """A probe's epoch: its remaining steps of one random cached window per track, dealt in
    micro-batches like crops; each process reads its micro-batches' windows only."""
    cache, batch_size = run.cache[0], run.settings.batch_size
    chosen = one_window_per_track(
        cache.window_tracks.numpy(), np.random.default_rng([run.settings.seed, epoch])
    )
    for start in range(run.progress.batches_done * batch_size, len(chosen), batch_size):
        step = chosen[start : start + batch_size]
        share = process_share(step, run.settings.micro_batch_size, run.processes)
        micro_batches = [
            MicroBatch({"layers": cache.read(windows)}, cache.window_tracks[windows], index, weight)
            for windows, index, weight in share
        ]
        yield micro_batches, len(step)


def epoch_steps(run: TrainingRun, epoch: int) -> Iterator[tuple[list[MicroBatch], int]]:
    """The epoch's remaining steps: of crops, or (probe) of cached windows, one per track."""
    return crop_steps(run, epoch) if run.cache is None else cached_window_steps(run, epoch)


def seed_micro_batch(seed: int, step: int, index: int) -> None:
    """Dropout and SpecAugment masks from (seed, step, micro-batch) alone: the same whatever the
    number of processes, and after a resume."""
    torch_seed, numpy_seed = np.random.SeedSequence([seed, step, index]).generate_state(2)
    torch.manual_seed(int(torch_seed))
    np.random.seed(int(numpy_seed))


def step_loss(
    run: TrainingRun, micro_batches: list[MicroBatch], n_tracks: int, targets: torch.Tensor
) -> torch.Tensor:
    """Accumulate the gradient of one step's mean loss over its `n_tracks` tracks; return this
    process's part of that loss, on the device (read later: no wait for the device per step).

    Each process adds its micro-batches' summed losses; DDP averages the gradients over the
    processes (exchanging them after the last micro-batch only), hence the scale.
    """
    n_values = n_tracks * targets.shape[1]
    scale = (run.processes.world_size if run.ddp else 1) / n_values
    loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
    for position, micro in enumerate(micro_batches):
        seed_micro_batch(run.settings.seed, run.progress.step, micro.index)
        last = position == len(micro_batches) - 1
        with contextlib.nullcontext() if last or run.ddp is None else run.ddp.no_sync():
            with autocast(run.device):
                logits = run.logits(micro.inputs)
            micro_targets = targets[micro.tracks].to(run.device, non_blocking=True)
            summed = run.loss_fn(logits.float(), micro_targets) * micro.weight
            (summed * scale).backward()
        loss_sum += summed.detach()
    return loss_sum / n_values


@dataclass
class DoneStep:
    """An optimiser step whose loss the host has not read yet."""

    step: int
    loss: torch.Tensor  # this process's part, on the device
    n_tracks: int  # in the step's whole batch
    tracks: torch.Tensor  # this process's track indices
    learning_rates: dict[str, float]


@dataclass
class StepsToLog:
    """Optimiser steps done since the host last read their losses: it reads them every
    `LOG_EVERY_STEPS` steps, at a checkpoint and at the epoch's end, in one transfer."""

    steps: list[DoneStep] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)


def log_steps(run: TrainingRun, pending: StepsToLog, epoch: int, bar: tqdm, run_log: RunLog) -> StepsToLog:
    """Read the pending steps' losses (summed over the processes), check them, count them in the
    epoch and log them; return an empty `StepsToLog`."""
    if not pending.steps:
        return StepsToLog()
    losses = torch.stack([done.loss for done in pending.steps])
    if run.ddp:
        losses = sum_over_processes(losses, run.processes)
    seconds = time.perf_counter() - pending.started  # the device's work included: it is read now
    progress, n_tracks = run.progress, sum(done.n_tracks for done in pending.steps)
    progress.epoch_train_seconds += seconds  # loading included, checkpoints not
    for done, loss in zip(pending.steps, losses.tolist()):
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"non-finite training loss {loss} at step {done.step} (epoch {epoch}); track ids of "
                f"this process's part of the batch: {run.training.track_ids[done.tracks.numpy()].tolist()}"
            )
        progress.epoch_loss_sum += loss * done.n_tracks
        progress.epoch_clips += done.n_tracks
        run_log.step(done.step, loss, done.learning_rates, n_tracks / seconds)
    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
    return StepsToLog()


def train_epoch(
    run: TrainingRun,
    epoch: int,
    steps: Iterable[tuple[list[MicroBatch], int]],
    stop_requested: threading.Event,
    run_log: RunLog,
) -> None:
    """The epoch's remaining optimiser steps, with a checkpoint every `checkpoint_minutes`."""
    progress, training, settings = run.progress, run.training, run.settings
    trainable = [p for p in run.model.parameters() if p.requires_grad]
    targets = torch.from_numpy(training.targets)
    run.model.train()
    bar = tqdm(
        steps,
        desc=f"epoch {epoch}/{settings.epochs}",
        file=sys.stderr,
        initial=progress.batches_done,
        total=math.ceil(len(training.track_ids) / settings.batch_size),
        disable=not run.processes.is_main,
    )
    pending = StepsToLog()
    for micro_batches, n_tracks in bar:
        run.optimizer.zero_grad(set_to_none=True)
        loss = step_loss(run, micro_batches, n_tracks, targets)
        torch.nn.utils.clip_grad_norm_(trainable, settings.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        progress.step += 1
        progress.batches_done += 1
        rates = {part: run.learning_rate(part) for part in ("backbone", "head")}
        tracks = torch.cat([micro.tracks for micro in micro_batches])
        pending.steps.append(DoneStep(progress.step, loss, n_tracks, tracks, rates))

        # Every process stops, or checkpoints, at the same step as the first that wants to.
        stop, due = any_process(
            (stop_requested.is_set(), run.checkpoint_due(time.perf_counter())), run.processes
        )
        if stop or due or len(pending.steps) == LOG_EVERY_STEPS:
            pending = log_steps(run, pending, epoch, bar, run_log)
        if stop or due:
            run.save_checkpoint()
            pending.started = time.perf_counter()
            if stop:
                raise interrupted(f"at step {progress.step} (epoch {epoch})", run.state_dir)
    log_steps(run, pending, epoch, bar, run_log)
