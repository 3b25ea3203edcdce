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

Several processes (one per GPU, `distributed.py`) run this same code on parts of each batch.
The pieces: `training_run.py` (the run's state and checkpoints), `steps.py` (an epoch's
optimiser steps), `validation.py` (validation, selection, the training log); this module puts
a run together, trains it and saves its best epoch.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from fma_genre import checkpoint
from fma_genre.codedeps import module_closure_digest
from fma_genre.digests import sha1_of
from fma_genre.distributed import Processes, any_process, barrier, join, leave
from fma_genre.inference import ScoringStopped, best_device
from fma_genre.labels import read_vocabulary
from fma_genre.lora import add_lora_adapters, is_backbone_parameter, merged
from fma_genre.metrics import classification_metrics, tune_thresholds
from fma_genre.model import load_classifier
from fma_genre.pretrained import read_source
from fma_genre.probe import PooledWindows, cache_split
from fma_genre.run_log import RunLog
from fma_genre.saved_model import save_model
from fma_genre.steps import epoch_steps, train_epoch
from fma_genre.tracks import FRAMES_PER_SECOND, read_split
from fma_genre.training_run import TrainingInterrupted, TrainingRun, interrupted, stop_on_sigterm
from fma_genre.validation import end_epoch, validate, write_training_log

log = logging.getLogger(__name__)

# Validation metrics that can select the best epoch; see the README for why mAP is the default.
SELECTION_METRICS = ("mAP", "top_genre_accuracy", "macro_f1")
MODES = ("finetune", "probe", "lora")
__all__ = ["TrainingInterrupted", "train"]


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
    micro_batch_size: int | None = None,
    gradient_checkpointing: bool = False,
    compile: bool = False,
    checkpoint_minutes: float = 15.0,
    threads: int = 2,
) -> dict | None:
    """Train the pretrained model in `mode`, keep the epoch with the best validation `selection_metric`.

    Writes the best model to `model_out_dir` (see `saved_model.py`), one row per epoch to
    `training_log_csv` and TensorBoard events to `tensorboard_dir`; returns the training summary.
    `patience`: stop after that many epochs without improvement (None: never). `lora_*` apply to
    mode lora only. `run_name` names the run in MLflow, when MLFLOW_TRACKING_URI is set.

    Under a launcher (`distributed.launch`), every process runs this: `batch_size` stays the
    batch of one optimiser step, dealt to the processes in micro-batches of `micro_batch_size`
    (default: batch_size / processes), whose gradients accumulate. The micro-batches, not the
    processes, fix the result: the same micro-batch size gives the same training (up to the order
    of float sums) on any number of processes, and a run resumes on another number.
    `gradient_checkpointing` (less memory, ~30% more compute), `compile` (torch.compile),
    `checkpoint_minutes` and `threads` do not change the result either. Returns the training
    summary (None in the other processes).
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
    processes = join(device)
    micro_batch_size = micro_batch_size or batch_size // processes.world_size
    if not 1 <= micro_batch_size <= batch_size or batch_size % micro_batch_size:
        raise ValueError(
            f"micro_batch_size must divide batch_size ({batch_size}), got {micro_batch_size}"
            f" (default: batch_size / the {processes.world_size} processes)"
        )
    settings["micro_batch_size"] = micro_batch_size  # it draws the random masks
    log.info("training on %s x %d processes, micro-batches of %d", device_name, processes.world_size, micro_batch_size)
    crop_frames = round(crop_seconds * FRAMES_PER_SECOND)
    # From the start: a SIGTERM while the model loads stops the run at its first step.
    with stop_on_sigterm() as stop_requested:
        run = build_run(manifest_csv, vocabulary_tsv, pretrained_dir, state_dir, settings, device, processes,
                        gradient_checkpointing=gradient_checkpointing, compile=compile)
        if mode == "probe":
            run.cache = cache_probe_inputs(run, crop_frames, eval_batch_size, threads, stop_requested)
        with RunLog(tensorboard_dir, run.progress.step, run_name, settings, enabled=processes.is_main) as run_log:

            def patience_left() -> bool:
                return patience is None or run.progress.epochs_without_improvement < patience

            while run.progress.epochs_done < epochs and patience_left():
                epoch = run.progress.epochs_done + 1
                train_epoch(
                    run, epoch, epochs, epoch_steps(run, epoch, batch_size, crop_frames, seed, threads),
                    batch_size=batch_size, seed=seed, grad_clip=grad_clip, checkpoint_minutes=checkpoint_minutes,
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
                if processes.is_main:
                    write_training_log(run.progress.log_rows, training_log_csv)
                if any_process(stop_requested.is_set(), processes):
                    raise interrupted(f"after epoch {epoch}", run.state_dir)

    if not patience_left():
        log.info("early stop: no better validation %s in the last %d epochs", selection_metric, patience)
    summary = None
    if processes.is_main:
        summary = finish(run, pretrained_dir, model_out_dir, settings | dict(patience=patience),
                         f"{device_name} x {processes.world_size}")
        log.info(
            "best epoch %d (validation %s %.4f) saved to %s",
            run.progress.best_epoch, selection_metric, run.progress.best_metric, model_out_dir,
        )
    # DDP's reducer holds the process group: freed before the group is, or gloo's teardown can
    # wait forever once the other processes have left (seen once, at the end of a demo training).
    run.ddp = run.forward = None
    gc.collect()
    barrier(processes)
    leave(processes)
    return summary


def cache_probe_inputs(
    run: TrainingRun, crop_frames: int, eval_batch_size: int, threads: int, stop_requested: threading.Event
) -> tuple[PooledWindows, PooledWindows]:
    """The frozen backbone's pooled outputs of every training and validation window, once."""
    try:
        return tuple(
            cache_split(run.model, tracks, crop_frames, eval_batch_size, run.device, threads, f"caching {split}",
                        stop_requested, run.processes)
            for split, tracks in (("training", run.training), ("validation", run.validation))
        )
    except ScoringStopped:  # nothing new to save: the state on disk is still the run's last
        raise interrupted("while caching the backbone's outputs", run.state_dir) from None


def build_run(
    manifest_csv, vocabulary_tsv, pretrained_dir, state_dir, settings: dict, device: torch.device,
    processes: Processes = Processes(), *, gradient_checkpointing: bool = False, compile: bool = False,
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
    if gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=dict(use_reentrant=False))
    if settings["mode"] == "probe":
        model.freeze_base_model()
    elif settings["mode"] == "lora":
        model = add_lora_adapters(model, settings["lora_rank"], settings["lora_alpha"])
    optimizer = torch.optim.AdamW(
        parameter_groups(model, settings["lr_backbone"], settings["lr_head"], settings["weight_decay"]),
        fused=device.type == "cuda",  # one kernel for all parameters instead of a loop
    )
    total_steps = settings["epochs"] * math.ceil(len(training.track_ids) / settings["batch_size"])
    warmup_steps = max(1, round(settings["warmup_fraction"] * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup_steps, total_steps))
    # Summed: a step's loss is normalised over its whole batch, whichever process computes a part.
    loss_fn = torch.nn.BCEWithLogitsLoss(
        pos_weight=positive_weights(training.targets, settings["max_pos_weight"]).to(device), reduction="sum"
    )
    key = settings | dict(
        # The manifest holds every feature file's SHA1: recomputed features make a state stale.
        manifest_sha1=sha1_of(manifest_csv),
        vocabulary_sha1=sha1_of(vocabulary_tsv),
        pretrained_commit=read_source(pretrained_dir)["commit"],
        training_code=module_closure_digest(__name__),
    )
    # The main process clears what an interrupted writer left; the others then read the state.
    state_dir = checkpoint.prepare(state_dir) if processes.is_main else Path(state_dir)
    barrier(processes)
    run = TrainingRun(
        model, optimizer, scheduler, loss_fn, training, validation, label_names,
        np.array([genre.top_level for genre in vocabulary]), device, state_dir, key,
        processes=processes, micro_batch_size=settings["micro_batch_size"],
    )
    run.resume()
    if processes.distributed and settings["mode"] != "probe":
        # Some weights (SpecAugment's mask embedding) sit out the batches that draw no mask.
        run.ddp = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    if compile:
        # SpecAugment draws its masks with numpy; by default TorchDynamo would draw them from
        # torch's random stream instead, and a compiled run would train on other masks.
        torch._dynamo.config.use_numpy_random_stream = True
    run.forward = torch.compile(model if run.ddp is None else run.ddp) if compile else run.ddp
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
