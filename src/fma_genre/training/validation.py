"""After each epoch: the validation split scored in windows (split between the processes), the
best epoch kept, the training log written."""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fma_genre.evaluation.metrics import classification_metrics
from fma_genre.io.atomic import atomic_path
from fma_genre.runtime.devices import autocast
from fma_genre.runtime.processes import from_main, gather_in_rank_order
from fma_genre.scoring.windows import ScoringStopped, track_probabilities, window_logits
from fma_genre.training.probe import head_logits
from fma_genre.training.run_state import TrainingRun, interrupted

log = logging.getLogger(__name__)

LOG_COLUMNS = [
    "epoch",
    "step",
    "train_loss",
    "val_loss",
    "val_mAP",
    "val_top_genre_accuracy",
    "val_macro_f1",
    "lr_backbone",
    "lr_head",
    "epoch_seconds",
    "train_clips_per_second",
]


def write_training_log(rows: list[dict], path: str | Path) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=LOG_COLUMNS).to_csv(tmp, index=False, float_format="%.6g")


def validate(run: TrainingRun, epoch: int, stop_requested: threading.Event):
    """Validation loss (per window, like the training loss), metrics (per track) and track scores.

    SIGTERM stops it: the checkpoint then holds the epoch's finished steps, and a resumed run
    starts with this validation.
    """
    validation = run.validation
    try:
        logits, window_tracks = validation_logits(run, f"validation {epoch}", stop_requested)
    except ScoringStopped:
        run.save_checkpoint()
        raise interrupted(f"in the validation of epoch {epoch}", run.state_dir) from None
    if not run.processes.is_main:  # the windows of every process were gathered: computed once
        return from_main(None, run.processes)
    targets = torch.from_numpy(validation.targets)[window_tracks]
    val_loss = run.loss_fn(logits.to(run.device), targets.to(run.device)).item() / targets.numel()
    scores = track_probabilities(logits, window_tracks, len(validation.track_ids))
    metrics = classification_metrics(validation.targets, scores, run.vocabulary, validation.genre_top)
    return from_main((val_loss, metrics, scores), run.processes)


def validation_logits(
    run: TrainingRun, desc: str, stop_requested: threading.Event
) -> tuple[torch.Tensor, torch.Tensor]:
    """(windows, labels) logits of every validation window, and each window's track index."""
    if run.cache is None:
        return window_logits(
            run.model,
            run.validation_loader,
            run.validation.n_frames,
            run.crop_frames,
            run.settings.eval_batch_size,
            run.device,
            desc=desc,
            stop=stop_requested,
            processes=run.processes,
        )
    return cached_validation_logits(run)


@torch.no_grad()
def cached_validation_logits(run: TrainingRun) -> tuple[torch.Tensor, torch.Tensor]:
    """A probe's validation: the head on every cached validation window, each process on a
    contiguous part read a batch at a time, gathered in window order."""
    cache, batch_size = run.cache[1], run.settings.eval_batch_size
    run.model.eval()
    part = np.array_split(np.arange(len(cache)), run.processes.world_size)[run.processes.rank]
    logits = []
    for start in range(0, len(part), batch_size):
        layers = cache.read(part[start : start + batch_size]).to(run.device, non_blocking=True)
        with autocast(run.device):
            logits.append(head_logits(run.model, layers).float().cpu())
    mine = torch.cat(logits) if logits else torch.zeros(0, len(run.vocabulary.titles))
    return torch.cat(gather_in_rank_order(mine, run.processes)), cache.window_tracks


def end_epoch(
    run: TrainingRun,
    epoch: int,
    val_loss: float,
    metrics: dict,
    scores: np.ndarray,
    validation_seconds: float,
) -> dict:
    """Log the epoch; keep its weights and validation scores if it is the best so far. Epochs
    of the learning-rate warm-up do not count towards the patience: their scores are noisy."""
    progress, selection_metric = run.progress, run.settings.selection_metric
    row = dict(
        epoch=epoch,
        step=progress.step,
        train_loss=progress.epoch_loss_sum / progress.epoch_clips,
        val_loss=val_loss,
        val_mAP=metrics["mAP"],
        val_top_genre_accuracy=metrics["top_genre_accuracy"],
        val_macro_f1=metrics["macro_f1"],
        lr_backbone=run.learning_rate("backbone"),
        lr_head=run.learning_rate("head"),
        epoch_seconds=progress.epoch_train_seconds + validation_seconds,
        train_clips_per_second=progress.epoch_clips / progress.epoch_train_seconds,
    )
    progress.log_rows.append(row)
    progress.training_seconds += row["epoch_seconds"]
    progress.train_seconds += progress.epoch_train_seconds
    progress.clips_trained += progress.epoch_clips
    score = metrics[selection_metric] if math.isfinite(metrics[selection_metric]) else -math.inf
    if score > progress.best_metric or progress.best_epoch == 0:
        progress.best_metric, progress.best_epoch = score, epoch
        progress.epochs_without_improvement = 0
        run.best_validation_scores = torch.from_numpy(scores)
        run.keep_best()
    elif epoch > run.settings.warmup_fraction * run.settings.epochs:
        progress.epochs_without_improvement += 1
    progress.epochs_done, progress.batches_done = epoch, 0
    progress.epoch_loss_sum, progress.epoch_clips, progress.epoch_train_seconds = 0.0, 0, 0.0
    log.info(
        "epoch %d: %s; best %s %.4f at epoch %d",
        epoch,
        ", ".join(f"{name} {value:.4g}" for name, value in row.items() if name != "epoch"),
        selection_metric,
        progress.best_metric,
        progress.best_epoch,
    )
    return row
