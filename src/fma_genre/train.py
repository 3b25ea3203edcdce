"""Training Wav2Vec2-BERT on log-mel crops: batch → loss → optimiser step → log → checkpoint.

Three modes: `finetune` (the whole model), `lora` (adapters on the attention projections,
`lora.py`) and `probe` (a frozen backbone: the head trains on cached backbone outputs,
`probe.py`). Each epoch trains on one random crop (probe: one cached window) of every training
track, then scores the validation split in windows (`inference.py`); the epoch with the best
validation `selection_metric` becomes the saved model, and training stops early after `patience`
epochs without a better one (counted from the end of the learning-rate warm-up). The per-label
decision thresholds are then tuned on that epoch's validation scores. Losses, metrics and
learning rates also go to TensorBoard (and MLflow when configured; `run_log.py`).

The run is resumable (`checkpoint.py`): the state is saved at every epoch end, every
`checkpoint_minutes` inside an epoch and when SIGTERM arrives (SLURM's warning before a time
limit; the run then stops with `TrainingInterrupted`). The same call continues from it, even
mid-epoch, with the same crops, batches and RNG streams as if never stopped: on CPU the result is
bit-identical (tested); on a GPU it is so up to its kernels' own non-determinism (bf16 SDPA and
atomic adds). The state is deleted once the model is written.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from fma_genre import checkpoint
from fma_genre.atomic import atomic_path
from fma_genre.codedeps import module_closure_digest
from fma_genre.digests import sha1_of
from fma_genre.inference import (
    ScoringStopped,
    autocast,
    best_device,
    track_probabilities,
    window_logits,
)
from fma_genre.labels import read_vocabulary
from fma_genre.loader import window_loader
from fma_genre.lora import add_lora_adapters, is_backbone_parameter, merged
from fma_genre.metrics import classification_metrics, tune_thresholds
from fma_genre.model import load_classifier
from fma_genre.pretrained import read_source
from fma_genre.probe import PooledWindows, cache_split, head_logits, random_window_batches
from fma_genre.run_log import RunLog
from fma_genre.saved_model import save_model
from fma_genre.tracks import FRAMES_PER_SECOND, SplitTracks, random_crops, read_split

log = logging.getLogger(__name__)

# Validation metrics that can select the best epoch; see the README for why mAP is the default.
SELECTION_METRICS = ("mAP", "top_genre_accuracy", "macro_f1")
MODES = ("finetune", "probe", "lora")
LOG_COLUMNS = (
    "epoch step train_loss val_loss val_mAP val_top_genre_accuracy val_macro_f1 lr_backbone lr_head "
    "epoch_seconds train_clips_per_second"
).split()


class TrainingInterrupted(RuntimeError):
    """SIGTERM arrived: the state is saved and the same call resumes the run."""


def interrupted(where: str, state_dir: Path) -> TrainingInterrupted:
    """The exception to stop with after SIGTERM, logged too (the log outlives the traceback)."""
    message = f"SIGTERM: stopped {where}; the state in {state_dir} resumes the run"
    log.warning(message)
    return TrainingInterrupted(message)


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


def parameter_groups(
    model: torch.nn.Module, lr_backbone: float, lr_head: float, weight_decay: float
) -> list[dict]:
    """AdamW groups: backbone and head at their own learning rates; no decay on biases and norms."""
    groups = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            part = "backbone" if is_backbone_parameter(name) else "head"
            decays = param.ndim >= 2
            group = groups.setdefault(
                (part, decays),
                dict(
                    params=[],
                    lr=lr_backbone if part == "backbone" else lr_head,
                    weight_decay=weight_decay if decays else 0.0,
                    part=part,
                ),
            )
            group["params"].append(param)
    return list(groups.values())


def warmup_cosine(warmup_steps: int, total_steps: int):
    """Learning-rate factor: linear warm-up from 1/warmup_steps to 1, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def positive_weights(targets: np.ndarray, max_pos_weight: float) -> torch.Tensor:
    """n_negative / n_positive per label, within [1, max_pos_weight]: rare genres are not ignored."""
    n_positive = targets.sum(axis=0)
    ratio = (len(targets) - n_positive) / np.maximum(n_positive, 1)
    return torch.tensor(np.clip(ratio, 1.0, max_pos_weight), dtype=torch.float32)


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[threading.Event]:
    """An event set by SIGTERM (SLURM's warning before the time limit) instead of dying at once."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_training_log(rows: list[dict], path: str | Path) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=LOG_COLUMNS).to_csv(tmp, index=False, float_format="%.6g")


@dataclass
class TrainingRun:
    """One training run: the model and its optimiser, the data, and where the run stands."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    loss_fn: torch.nn.Module
    training: SplitTracks
    validation: SplitTracks
    label_names: list[str]
    top_level_mask: np.ndarray
    device: torch.device
    state_dir: Path
    key: dict
    progress: Progress = field(default_factory=Progress)
    best_validation_scores: torch.Tensor | None = None  # (tracks, labels), for the thresholds
    # Mode probe: the training and validation windows as the head sees them.
    cache: tuple[PooledWindows, PooledWindows] | None = None

    def logits(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The model's logits of a batch: log-mel windows, or (probe) cached pooled layers."""
        inputs = {name: tensor.to(self.device) for name, tensor in inputs.items()}
        if "layers" in inputs:
            return head_logits(self.model, inputs["layers"])
        return self.model(**inputs).logits

    def resume(self) -> None:
        state = checkpoint.load_state(self.state_dir, self.key)
        if state is None:  # the old state, if any, is replaced by this run's first checkpoint
            return
        checkpoint.load_trained_weights(self.model, state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_states(state["rng"])
        self.progress = Progress(**state["progress"])
        self.best_validation_scores = state["best_validation_scores"]
        log.info(
            "resuming: %d epochs and %d batches of the next done",
            self.progress.epochs_done,
            self.progress.batches_done,
        )

    def save_checkpoint(self) -> tuple[int, float]:
        written = checkpoint.save_state(
            self.state_dir,
            dict(
                key=self.key,
                model=checkpoint.trained_weights(self.model),
                optimizer=self.optimizer.state_dict(),
                scheduler=self.scheduler.state_dict(),
                rng=checkpoint.rng_states(),
                progress=asdict(self.progress),
                best_validation_scores=self.best_validation_scores,
            ),
        )
        checkpoint.keep_only_best(self.state_dir, self.progress.best_epoch)
        return written

    def learning_rate(self, part: str) -> float:
        return next((g["lr"] for g in self.optimizer.param_groups if g["part"] == part), 0.0)


def crop_batches(
    run: TrainingRun, epoch: int, batch_size: int, crop_frames: int, seed: int, threads: int
) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """The epoch's remaining batches of (model inputs, track indices): one random crop per track."""
    # The epoch's crops derive from (seed, epoch) alone, so a resumed epoch gets the same.
    crops = random_crops(run.training.n_frames, crop_frames, np.random.default_rng([seed, epoch]))
    crops = crops[run.progress.batches_done * batch_size :]
    for features, mask, tracks in window_loader(run.training.paths, crops, batch_size, run.device, threads):
        yield {"input_features": features, "attention_mask": mask}, tracks


def epoch_batches(run, epoch: int, batch_size: int, crop_frames: int, seed: int, threads: int):
    if run.cache is not None:
        rng = np.random.default_rng([seed, epoch])
        return random_window_batches(run.cache[0], batch_size, rng, run.progress.batches_done)
    return crop_batches(run, epoch, batch_size, crop_frames, seed, threads)


def train_epoch(
    run: TrainingRun,
    epoch: int,
    epochs: int,
    batches: Iterable[tuple[dict[str, torch.Tensor], torch.Tensor]],
    *,
    batch_size: int,
    grad_clip: float,
    checkpoint_minutes: float,
    stop_requested: threading.Event,
    run_log: RunLog,
) -> None:
    """The epoch's remaining optimiser steps, with a checkpoint every `checkpoint_minutes`."""
    progress, training = run.progress, run.training
    trainable = [p for p in run.model.parameters() if p.requires_grad]
    targets = torch.from_numpy(training.targets)
    run.model.train()
    batches = tqdm(
        batches,
        desc=f"epoch {epoch}/{epochs}",
        file=sys.stderr,
        initial=progress.batches_done,
        total=math.ceil(len(training.track_ids) / batch_size),
    )
    last_checkpoint = step_started = time.perf_counter()
    for inputs, tracks in batches:
        with autocast(run.device):
            logits = run.logits(inputs)
        loss = run.loss_fn(logits.float(), targets[tracks].to(run.device))
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite training loss {loss.item()} at step {progress.step + 1} (epoch {epoch}); "
                f"track ids of the batch: {training.track_ids[tracks.numpy()].tolist()}"
            )
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        progress.step += 1
        progress.batches_done += 1
        progress.epoch_loss_sum += loss.item() * len(tracks)
        progress.epoch_clips += len(tracks)
        batches.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        now = time.perf_counter()
        progress.epoch_train_seconds += now - step_started  # loading included, checkpoints not
        run_log.step(
            progress.step, loss.item(), {part: run.learning_rate(part) for part in ("backbone", "head")},
            len(tracks) / (now - step_started),
        )

        if stop_requested.is_set() or now - last_checkpoint >= 60 * checkpoint_minutes:
            run.save_checkpoint()
            last_checkpoint = now
            if stop_requested.is_set():
                raise interrupted(f"at step {progress.step} (epoch {epoch})", run.state_dir)
        step_started = time.perf_counter()


def validate(
    run: TrainingRun, crop_frames: int, eval_batch_size: int, threads: int, epoch: int,
    stop_requested: threading.Event,
):
    """Validation loss (per window, like the training loss), metrics (per track) and track scores.

    SIGTERM stops it: the checkpoint then holds the epoch's finished steps, and a resumed run
    starts with this validation.
    """
    validation = run.validation
    try:
        logits, window_tracks = validation_logits(
            run, crop_frames, eval_batch_size, threads, f"validation {epoch}", stop_requested
        )
    except ScoringStopped:
        run.save_checkpoint()
        raise interrupted(f"in the validation of epoch {epoch}", run.state_dir) from None
    targets = torch.from_numpy(validation.targets)[window_tracks]
    val_loss = run.loss_fn(logits.to(run.device), targets.to(run.device)).item()
    scores = track_probabilities(logits, window_tracks, len(validation.track_ids))
    metrics = classification_metrics(
        validation.targets, scores, run.label_names, run.top_level_mask, validation.genre_top
    )
    return val_loss, metrics, scores


def validation_logits(
    run: TrainingRun, crop_frames: int, eval_batch_size: int, threads: int, desc: str,
    stop_requested: threading.Event,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(windows, labels) logits of every validation window, and each window's track index."""
    if run.cache is None:
        return window_logits(
            run.model, run.validation.paths, run.validation.n_frames, crop_frames, eval_batch_size,
            run.device, threads, desc=desc, stop=stop_requested,
        )
    cached = run.cache[1]
    run.model.eval()
    with torch.no_grad(), autocast(run.device):
        return run.logits({"layers": cached.layers}).float().cpu(), cached.window_tracks


def end_epoch(
    run: TrainingRun, epoch: int, val_loss: float, metrics: dict, scores: np.ndarray,
    selection_metric: str, validation_seconds: float, in_warmup: bool,
) -> dict:
    """Log the epoch; keep its weights and validation scores if it is the best so far. Epochs
    of the learning-rate warm-up do not count towards the patience: their scores are noisy."""
    progress = run.progress
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
        checkpoint.save_best(run.state_dir, run.model, run.key, epoch)
    elif not in_warmup:
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


def train(
    manifest_csv: str | Path,
    vocabulary_tsv: str | Path,
    pretrained_dir: str | Path,
    model_out_dir: str | Path,
    training_log_csv: str | Path,
    state_dir: str | Path,
    tensorboard_dir: str | Path,
    *,
    mode: str = "finetune",
    run_name: str = "training",
    epochs: int = 20,
    batch_size: int = 16,
    crop_seconds: float = 10.0,
    lr_backbone: float = 1e-5,
    lr_head: float = 1e-3,
    weight_decay: float = 0.01,
    warmup_fraction: float = 0.1,
    grad_clip: float = 1.0,
    lora_rank: int = 8,
    lora_alpha: float = 16.0,
    patience: int | None = 5,
    selection_metric: str = "mAP",
    max_pos_weight: float = 100.0,
    seed: int = 0,
    eval_batch_size: int = 16,
    checkpoint_minutes: float = 15.0,
    threads: int = 2,
) -> dict:
    """Train the pretrained model in `mode`, keep the epoch with the best validation `selection_metric`.

    Writes the best model to `model_out_dir` (see `saved_model.py`), one row per epoch to
    `training_log_csv` and TensorBoard events to `tensorboard_dir`; returns the training summary.
    `patience`: stop after that many epochs without improvement (None: never). `lora_*` apply to
    mode lora only. `run_name` names the run in MLflow, when MLFLOW_TRACKING_URI is set.
    `checkpoint_minutes` and `threads` do not change the result.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if selection_metric not in SELECTION_METRICS:
        raise ValueError(f"selection_metric must be one of {SELECTION_METRICS}, got {selection_metric!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    # Everything that changes the result; `epochs` too, since the cosine schedule spans all epochs.
    settings = dict(
        mode=mode, epochs=epochs, batch_size=batch_size, crop_seconds=crop_seconds, lr_backbone=lr_backbone,
        lr_head=lr_head, weight_decay=weight_decay, warmup_fraction=warmup_fraction, grad_clip=grad_clip,
        selection_metric=selection_metric, max_pos_weight=max_pos_weight, seed=seed,
        eval_batch_size=eval_batch_size, **(dict(lora_rank=lora_rank, lora_alpha=lora_alpha) if mode == "lora" else {}),
    )
    torch.set_num_threads(threads)
    device, device_name = best_device()
    log.info("training on %s", device_name)
    crop_frames = round(crop_seconds * FRAMES_PER_SECOND)
    # From the start: a SIGTERM while the model loads stops the run at its first step.
    with stop_on_sigterm() as stop_requested:
        run = build_run(manifest_csv, vocabulary_tsv, pretrained_dir, state_dir, settings, device)
        if mode == "probe":
            run.cache = cache_probe_inputs(run, crop_frames, eval_batch_size, threads, stop_requested)
        with RunLog(tensorboard_dir, run.progress.step, run_name, settings) as run_log:

            def patience_left() -> bool:
                return patience is None or run.progress.epochs_without_improvement < patience

            while run.progress.epochs_done < epochs and patience_left():
                epoch = run.progress.epochs_done + 1
                train_epoch(
                    run, epoch, epochs, epoch_batches(run, epoch, batch_size, crop_frames, seed, threads),
                    batch_size=batch_size, grad_clip=grad_clip, checkpoint_minutes=checkpoint_minutes,
                    stop_requested=stop_requested, run_log=run_log,
                )
                validation_started = time.perf_counter()
                val_loss, metrics, scores = validate(
                    run, crop_frames, eval_batch_size, threads, epoch, stop_requested
                )
                run_log.epoch(end_epoch(
                    run, epoch, val_loss, metrics, scores, selection_metric,
                    time.perf_counter() - validation_started, in_warmup=epoch <= warmup_fraction * epochs,
                ))
                run.save_checkpoint()
                write_training_log(run.progress.log_rows, training_log_csv)
                if stop_requested.is_set():
                    raise interrupted(f"after epoch {epoch}", run.state_dir)

    if not patience_left():
        log.info("early stop: no better validation %s in the last %d epochs", selection_metric, patience)
    summary = finish(run, pretrained_dir, model_out_dir, settings | dict(patience=patience), device_name)
    log.info(
        "best epoch %d (validation %s %.4f) saved to %s",
        run.progress.best_epoch, selection_metric, run.progress.best_metric, model_out_dir,
    )
    return summary


def cache_probe_inputs(
    run: TrainingRun, crop_frames: int, eval_batch_size: int, threads: int, stop_requested: threading.Event
) -> tuple[PooledWindows, PooledWindows]:
    """The frozen backbone's pooled outputs of every training and validation window, once."""
    try:
        return tuple(
            cache_split(run.model, tracks, crop_frames, eval_batch_size, run.device, threads, f"caching {split}",
                        stop_requested)
            for split, tracks in (("training", run.training), ("validation", run.validation))
        )
    except ScoringStopped:  # nothing new to save: the state on disk is still the run's last
        raise interrupted("while caching the backbone's outputs", run.state_dir) from None


def build_run(
    manifest_csv, vocabulary_tsv, pretrained_dir, state_dir, settings: dict, device: torch.device
) -> TrainingRun:
    """The data, model, optimiser, schedule and loss of a run; resumed from its state if it has one."""
    torch.manual_seed(settings["seed"])  # the new head's initial weights, dropout
    np.random.seed(settings["seed"])  # SpecAugment
    vocabulary = read_vocabulary(vocabulary_tsv)
    training, validation = read_split(manifest_csv, "training"), read_split(manifest_csv, "validation")
    if training.label_columns != [genre.column for genre in vocabulary]:
        raise ValueError(f"{manifest_csv}: the label columns are not {vocabulary_tsv}'s labels in its order")
    if not len(training.track_ids) or not len(validation.track_ids):
        raise ValueError(f"{manifest_csv}: no usable training or validation tracks")
    label_names = [genre.title for genre in vocabulary]

    model = load_classifier(pretrained_dir, label_names, device=device)
    if settings["mode"] == "probe":
        model.freeze_base_model()
    elif settings["mode"] == "lora":
        model = add_lora_adapters(model, settings["lora_rank"], settings["lora_alpha"])
    optimizer = torch.optim.AdamW(
        parameter_groups(model, settings["lr_backbone"], settings["lr_head"], settings["weight_decay"])
    )
    total_steps = settings["epochs"] * math.ceil(len(training.track_ids) / settings["batch_size"])
    warmup_steps = max(1, round(settings["warmup_fraction"] * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup_steps, total_steps))
    loss_fn = torch.nn.BCEWithLogitsLoss(
        pos_weight=positive_weights(training.targets, settings["max_pos_weight"]).to(device)
    )
    key = settings | dict(
        # The manifest holds every feature file's SHA1: recomputed features make a state stale.
        manifest_sha1=sha1_of(manifest_csv),
        vocabulary_sha1=sha1_of(vocabulary_tsv),
        pretrained_commit=read_source(pretrained_dir)["commit"],
        training_code=module_closure_digest(__name__),
    )
    run = TrainingRun(
        model, optimizer, scheduler, loss_fn, training, validation, label_names,
        np.array([genre.top_level for genre in vocabulary]), device, checkpoint.prepare(state_dir), key,
    )
    run.resume()
    return run


def finish(run: TrainingRun, pretrained_dir, model_out_dir, settings: dict, device_name: str) -> dict:
    """Save the best epoch's weights as the model, with thresholds tuned on its validation scores."""
    progress = run.progress
    checkpoint.load_trained_weights(run.model, checkpoint.load_best(run.state_dir, run.key, progress.best_epoch))
    scores = run.best_validation_scores.numpy()
    thresholds = tune_thresholds(run.validation.targets, scores)
    tuned = classification_metrics(
        run.validation.targets, scores, run.label_names, run.top_level_mask, run.validation.genre_top,
        thresholds,
    )
    best = progress.log_rows[progress.best_epoch - 1]
    summary = dict(
        base_model_source=read_source(pretrained_dir),
        best_epoch=progress.best_epoch,
        selection_metric=settings["selection_metric"],
        validation=dict(
            {name: best[f"val_{name}"] for name in ("mAP", "top_genre_accuracy", "macro_f1", "loss")},
            # In-sample: the thresholds were tuned on these very tracks.
            macro_f1_tuned=tuned["macro_f1_tuned"],
        ),
        epochs_trained=progress.epochs_done,
        stopped_early=progress.epochs_done < settings["epochs"],
        training_seconds=progress.training_seconds,
        train_clips_per_second=progress.clips_trained / progress.train_seconds,
        device=device_name,
        settings=settings,
        excluded=dict(training=run.training.excluded, validation=run.validation.excluded),
    )
    save_model(
        merged(run.model), pretrained_dir, model_out_dir, summary,
        window_seconds=settings["crop_seconds"], thresholds=dict(zip(run.label_names, thresholds.tolist())),
    )
    checkpoint.clear(run.state_dir)
    return summary
