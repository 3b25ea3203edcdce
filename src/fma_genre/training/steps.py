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
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from fma_genre.features.crops import Window, random_crops
from fma_genre.features.loader import window_loader
from fma_genre.runtime.devices import autocast
from fma_genre.runtime.processes import Processes, any_process, sum_over_processes
from fma_genre.training.probe import random_window_batches
from fma_genre.training.run_log import RunLog
from fma_genre.training.run_state import TrainingRun, interrupted


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


def crop_steps(run: TrainingRun, epoch: int, threads: int) -> Iterator[tuple[list[MicroBatch], int]]:
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
    loaded = iter(
        window_loader(
            run.training.paths,
            [window for windows, _, _ in pieces for window in windows],
            [len(windows) for windows, _, _ in pieces],
            run.device,
            threads,
        )
    )
    for step, share in zip(steps, shares):
        micro_batches = []
        for _, index, weight in share:
            features, mask, tracks = next(loaded)
            micro_batches.append(
                MicroBatch({"input_features": features, "attention_mask": mask}, tracks, index, weight)
            )
        yield micro_batches, len(step)


def epoch_steps(run: TrainingRun, epoch: int, threads: int) -> Iterator[tuple[list[MicroBatch], int]]:
    """The epoch's remaining steps: of crops, or (probe) of cached windows, one per track."""
    if run.cache is None:
        return crop_steps(run, epoch, threads)
    rng = np.random.default_rng([run.settings.seed, epoch])
    batches = random_window_batches(run.cache[0], run.settings.batch_size, rng, run.progress.batches_done)
    return (([MicroBatch(inputs, tracks, 0)], len(tracks)) for inputs, tracks in batches)


def seed_micro_batch(seed: int, step: int, index: int) -> None:
    """Dropout and SpecAugment masks from (seed, step, micro-batch) alone: the same whatever the
    number of processes, and after a resume."""
    torch_seed, numpy_seed = np.random.SeedSequence([seed, step, index]).generate_state(2)
    torch.manual_seed(int(torch_seed))
    np.random.seed(int(numpy_seed))


def step_loss(
    run: TrainingRun, micro_batches: list[MicroBatch], n_tracks: int, targets: torch.Tensor
) -> float:
    """Accumulate the gradient of one step's mean loss over its `n_tracks` tracks; return that loss.

    Each process adds its micro-batches' summed losses; DDP averages the gradients over the
    processes (exchanging them after the last micro-batch only), hence the scale.
    """
    n_values = n_tracks * targets.shape[1]
    scale = (run.processes.world_size if run.ddp else 1) / n_values
    loss_sum = 0.0
    for position, micro in enumerate(micro_batches):
        seed_micro_batch(run.settings.seed, run.progress.step, micro.index)
        last = position == len(micro_batches) - 1
        with contextlib.nullcontext() if last or run.ddp is None else run.ddp.no_sync():
            with autocast(run.device):
                logits = run.logits(micro.inputs)
            summed = run.loss_fn(logits.float(), targets[micro.tracks].to(run.device)) * micro.weight
            (summed * scale).backward()
        loss_sum += summed.item()
    return (sum_over_processes(loss_sum, run.processes) if run.ddp else loss_sum) / n_values


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
    steps = tqdm(
        steps,
        desc=f"epoch {epoch}/{settings.epochs}",
        file=sys.stderr,
        initial=progress.batches_done,
        total=math.ceil(len(training.track_ids) / settings.batch_size),
        disable=not run.processes.is_main,
    )
    last_checkpoint = step_started = time.perf_counter()
    for micro_batches, n_tracks in steps:
        run.optimizer.zero_grad(set_to_none=True)
        loss = step_loss(run, micro_batches, n_tracks, targets)
        if not math.isfinite(loss):
            tracks = torch.cat([micro.tracks for micro in micro_batches]).numpy()
            raise FloatingPointError(
                f"non-finite training loss {loss} at step {progress.step + 1} (epoch {epoch}); "
                f"track ids of this process's part of the batch: {training.track_ids[tracks].tolist()}"
            )
        torch.nn.utils.clip_grad_norm_(trainable, settings.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        progress.step += 1
        progress.batches_done += 1
        progress.epoch_loss_sum += loss * n_tracks
        progress.epoch_clips += n_tracks
        steps.set_postfix(loss=f"{loss:.4f}", refresh=False)
        now = time.perf_counter()
        progress.epoch_train_seconds += now - step_started  # loading included, checkpoints not
        run_log.step(
            progress.step,
            loss,
            {part: run.learning_rate(part) for part in ("backbone", "head")},
            n_tracks / (now - step_started),
        )

        # Every process stops, or checkpoints, at the same step as the first that wants to.
        due = now - last_checkpoint >= 60 * settings.checkpoint_minutes
        stop, due = any_process((stop_requested.is_set(), due), run.processes)
        if stop or due:
            run.save_checkpoint()
            last_checkpoint = now
            if stop:
                raise interrupted(f"at step {progress.step} (epoch {epoch})", run.state_dir)
        step_started = time.perf_counter()
