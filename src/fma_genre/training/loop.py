"""Training Wav2Vec2-BERT on log-mel crops: batch → loss → optimiser step → log → checkpoint.

Three modes: `finetune` (the whole model), `lora` (adapters on the attention projections,
models/lora.py) and `probe` (a frozen backbone: the head trains on its outputs, computed once
by rule probe_cache, `probe_cache.py`). Each epoch trains on one random crop (probe: one cached window) of every training
track, then scores the validation split in windows (scoring/windows.py); the epoch with the best
validation `selection_metric` becomes the saved model, and training stops early after `patience`
epochs without a better one (counted from the end of the learning-rate warm-up). The per-label
decision thresholds are then tuned on that epoch's validation scores. Losses, metrics and
learning rates also go to TensorBoard (and MLflow when configured; `run_log.py`).

The run is resumable (`resume.py`): the state is saved every `checkpoint_minutes`, at the end
and when SIGTERM arrives (SLURM's warning before a time limit; the run then stops with
`TrainingInterrupted`). The same call continues from it, even
mid-epoch, with the same crops, batches and RNG streams as if never stopped: on CPU the result is
bit-identical (tested); on a GPU it is so up to its kernels' own non-determinism (bf16 SDPA and
atomic adds). The state is deleted once the model is written.

Several processes (one per GPU, runtime/processes.py) run this same code on parts of each batch.
The pieces: `run_state.py` (the run's state and checkpoints), `steps.py` (an epoch's optimiser
steps), `validation.py` (validation, selection, the training log), `optimisation.py` (AdamW's
groups, the schedule, the loss weights); this module puts a run together, trains it and saves
its best epoch.
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

from fma_genre.data.vocabulary import Vocabulary
from fma_genre.evaluation.metrics import classification_metrics, tune_thresholds
from fma_genre.features.crops import frames_of
from fma_genre.features.loader import WindowLoader
from fma_genre.features.splits import read_split
from fma_genre.io.codedeps import module_closure_digest
from fma_genre.io.digests import sha1_of
from fma_genre.models.classifier import load_classifier
from fma_genre.models.lora import add_lora_adapters, merged
from fma_genre.models.pretrained import read_source
from fma_genre.models.saved_model import save_model
from fma_genre.runtime.devices import best_device
from fma_genre.runtime.processes import Processes, any_process, barrier, join, leave
from fma_genre.training import resume
from fma_genre.training.optimisation import parameter_groups, positive_weights, warmup_cosine
from fma_genre.training.probe import ProbeHead
from fma_genre.training.probe_cache import open_probe_cache
from fma_genre.training.run_log import RunLog
from fma_genre.training.run_state import (
    TrainingInterrupted,
    TrainingRun,
    interrupted,
    stop_on_sigterm,
)
from fma_genre.training.settings import TrainingSettings
from fma_genre.training.steps import epoch_steps, train_epoch
from fma_genre.training.validation import end_epoch, validate, write_training_log

log = logging.getLogger(__name__)

__all__ = ["TrainingInterrupted", "train"]


def train(
    manifest_csv: str | Path,
    vocabulary_tsv: str | Path,
    pretrained_dir: str | Path,
    model_out_dir: str | Path,
    training_log_csv: str | Path,
    state_dir: str | Path,
    tensorboard_dir: str | Path,
    settings: TrainingSettings,
    *,
    probe_cache_dir: str | Path | None = None,
    run_name: str = "training",
    threads: int = 2,
) -> dict | None:
    """Train the pretrained model as `settings` say; keep the epoch with the best validation
    `selection_metric`.

    Writes the best model to `model_out_dir` (models/saved_model.py), one row per epoch to
    `training_log_csv` and TensorBoard events to `tensorboard_dir`; returns the training summary
    (None in all but the main process). Mode probe trains on `probe_cache_dir`, which
    `probe_cache.write_probe_cache` made of the same manifest, weights and crop length.
    `run_name` names the run in MLflow, when MLFLOW_TRACKING_URI is set.

    Under a launcher (runtime/processes.py), every process runs this on its micro-batches of
    each step (`micro_batch_size`, default batch_size / processes rounded up). The micro-batches,
    not the processes, fix the result (up to the order of float sums); a run resumes on any
    number of processes. `gradient_checkpointing`, `compile`, `checkpoint_minutes` and `threads`
    do not change the result either.
    """
    torch.set_num_threads(threads)
    device, device_name = best_device()
    processes = join(device)
    settings = settings.for_processes(processes.world_size)
    log.info(
        "training on %s x %d processes, micro-batches of %d",
        device_name,
        processes.world_size,
        settings.micro_batch_size,
    )
    # From the start: a SIGTERM while the model loads stops the run at its first step.
    with stop_on_sigterm() as stop_requested:
        run = build_run(
            manifest_csv,
            vocabulary_tsv,
            pretrained_dir,
            state_dir,
            settings,
            device,
            processes,
            probe_cache_dir,
        )
        with RunLog(
            tensorboard_dir, run.progress.step, run_name, settings.recorded(), enabled=processes.is_main
        ) as run_log:
            train_epochs(run, training_log_csv, stop_requested, run_log)
    summary = None
    if processes.is_main:
        summary = finish(run, pretrained_dir, model_out_dir, f"{device_name} x {processes.world_size}")
    release(run, processes)
    return summary


def train_epochs(
    run: TrainingRun, training_log_csv, stop_requested: threading.Event, run_log: RunLog
) -> None:
    """Epochs until `epochs` are done or the patience runs out, each trained, validated and
    checkpointed, with its row of the training log."""
    settings = run.settings
    while run.progress.epochs_done < settings.epochs and not run.out_of_patience():
        epoch = run.progress.epochs_done + 1
        train_epoch(run, epoch, epoch_steps(run, epoch), stop_requested, run_log)
        validation_started = time.perf_counter()
        val_loss, metrics, scores = validate(run, epoch, stop_requested)
        validation_seconds = time.perf_counter() - validation_started
        run_log.epoch(end_epoch(run, epoch, val_loss, metrics, scores, validation_seconds))
        if run.processes.is_main:
            write_training_log(run.progress.log_rows, training_log_csv)
        last = run.progress.epochs_done == settings.epochs or run.out_of_patience()
        stop, due = any_process(
            (stop_requested.is_set(), run.checkpoint_due(time.perf_counter())), run.processes
        )
        if stop or due or last:  # the last: a crash while the model is saved loses nothing
            run.save_checkpoint()
        if stop:
            raise interrupted(f"after epoch {epoch}", run.state_dir)
    if run.out_of_patience():
        log.info(
            "early stop: no better validation %s in the last %d epochs",
            settings.selection_metric,
            settings.patience,
        )


def build_model(pretrained_dir, vocabulary: Vocabulary, settings: TrainingSettings, device: torch.device):
    """The classifier on the pretrained backbone, with what trains in `settings.mode`."""
    model = load_classifier(pretrained_dir, vocabulary.titles, device=device)
    if settings.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=dict(use_reentrant=False))
    if settings.mode == "probe":
        model.freeze_base_model()
    elif settings.mode == "lora":
        model = add_lora_adapters(model, settings.lora_rank, settings.lora_alpha)
    return model


def build_run(
    manifest_csv,
    vocabulary_tsv,
    pretrained_dir,
    state_dir,
    settings: TrainingSettings,
    device: torch.device,
    processes: Processes = Processes(),
    probe_cache_dir: str | Path | None = None,
) -> TrainingRun:
    """The data, model, optimiser, schedule and loss of a run; resumed from its state if it has one."""
    torch.manual_seed(settings.seed)  # the new head's initial weights, dropout
    np.random.seed(settings.seed)  # SpecAugment
    vocabulary = Vocabulary.read(vocabulary_tsv)
    training, validation = read_split(manifest_csv, "training"), read_split(manifest_csv, "validation")
    if training.label_columns != vocabulary.columns:
        raise ValueError(f"{manifest_csv}: the label columns are not {vocabulary_tsv}'s labels in its order")
    if not len(training.track_ids) or not len(validation.track_ids):
        raise ValueError(f"{manifest_csv}: no usable training or validation tracks")
    cache = probe_cache(probe_cache_dir, manifest_csv, pretrained_dir, settings, training, validation)
    model = build_model(pretrained_dir, vocabulary, settings, device)
    optimizer = torch.optim.AdamW(
        parameter_groups(model, settings.lr_backbone, settings.lr_head, settings.weight_decay),
        fused=device.type == "cuda",  # one kernel for all parameters instead of a loop
    )
    total_steps = settings.epochs * math.ceil(len(training.track_ids) / settings.batch_size)
    warmup_steps = max(1, round(settings.warmup_fraction * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup_steps, total_steps))
    # Summed: a step's loss is normalised over its whole batch, whichever process computes a part.
    loss_fn = torch.nn.BCEWithLogitsLoss(
        pos_weight=positive_weights(training.targets, settings.max_pos_weight).to(device), reduction="sum"
    )
    key = run_key(settings, manifest_csv, vocabulary_tsv, pretrained_dir)
    # The main process clears what an interrupted writer left; the others then read the state.
    state_dir = resume.prepare(state_dir) if processes.is_main else Path(state_dir)
    barrier(processes)
    run = TrainingRun(
        model,
        optimizer,
        scheduler,
        loss_fn,
        training,
        validation,
        vocabulary,
        settings,
        device,
        state_dir,
        key,
        processes=processes,
        cache=cache,
        training_loader=WindowLoader(training.paths, device),
        validation_loader=WindowLoader(validation.paths, device),
    )
    run.resume()
    wrap_for_training(run)
    return run


def run_key(settings: TrainingSettings, manifest_csv, vocabulary_tsv, pretrained_dir) -> dict:
    """Everything that changes the trained model: what a resumable state must match."""
    return settings.result_key() | dict(
        # The manifest holds every feature file's SHA1: recomputed features make a state stale.
        manifest_sha1=sha1_of(manifest_csv),
        vocabulary_sha1=sha1_of(vocabulary_tsv),
        pretrained_commit=read_source(pretrained_dir)["commit"],
        training_code=module_closure_digest(__name__),
    )


def probe_cache(cache_dir, manifest_csv, pretrained_dir, settings: TrainingSettings, training, validation):
    """Mode probe: the run's probe cache, checked (None in the other modes)."""
    if settings.mode != "probe":
        return None
    if cache_dir is None:
        raise ValueError("mode probe trains on a probe cache: give probe_cache_dir (rule probe_cache)")
    tracks = dict(training=training, validation=validation)
    return open_probe_cache(cache_dir, manifest_csv, pretrained_dir, frames_of(settings.crop_seconds), tracks)


def wrap_for_training(run: TrainingRun) -> None:
    """What the steps call: the model (probe: its head alone, on cached layers), in DDP with
    several processes, through torch.compile when asked."""
    trained = ProbeHead(run.model) if run.settings.mode == "probe" else run.model
    if run.processes.distributed:
        # Some weights (SpecAugment's mask embedding) sit out the batches that draw no mask.
        device_ids = [run.device.index] if run.device.type == "cuda" else None
        run.ddp = DistributedDataParallel(
            trained, device_ids=device_ids, find_unused_parameters=run.settings.mode != "probe"
        )
        trained = run.ddp
    if run.settings.compile:
        # SpecAugment draws its masks with numpy; by default TorchDynamo would draw them from
        # torch's random stream instead, and a compiled run would train on other masks.
        torch._dynamo.config.use_numpy_random_stream = True
        trained = torch.compile(trained)
    run.forward = trained


def finish(run: TrainingRun, pretrained_dir, model_out_dir, device_name: str) -> dict:
    """Save the best epoch's weights as the model, with thresholds tuned on its validation scores."""
    progress, settings, validation = run.progress, run.settings, run.validation
    resume.load_trained_weights(run.model, run.best_weights)
    scores = run.best_validation_scores.numpy()
    thresholds = tune_thresholds(validation.targets, scores)
    tuned = classification_metrics(
        validation.targets, scores, run.vocabulary, validation.genre_top, thresholds
    )
    best = progress.log_rows[progress.best_epoch - 1]
    summary = dict(
        base_model_source=read_source(pretrained_dir),
        best_epoch=progress.best_epoch,
        selection_metric=settings.selection_metric,
        validation=dict(
            {name: best[f"val_{name}"] for name in ("mAP", "top_genre_accuracy", "macro_f1", "loss")},
            # In-sample: the thresholds were tuned on these very tracks.
            macro_f1_tuned=tuned["macro_f1_tuned"],
        ),
        epochs_trained=progress.epochs_done,
        stopped_early=progress.epochs_done < settings.epochs,
        training_seconds=progress.training_seconds,
        train_clips_per_second=progress.clips_trained / progress.train_seconds,
        device=device_name,
        settings=settings.recorded(),
        excluded=dict(training=run.training.excluded, validation=validation.excluded),
    )
    save_model(
        merged(run.model),
        pretrained_dir,
        model_out_dir,
        summary,
        window_seconds=settings.crop_seconds,
        thresholds=dict(zip(run.vocabulary.titles, thresholds.tolist())),
    )
    resume.clear(run.state_dir)
    log.info(
        "best epoch %d (validation %s %.4f) saved to %s",
        progress.best_epoch,
        settings.selection_metric,
        progress.best_metric,
        model_out_dir,
    )
    return summary


def release(run: TrainingRun, processes: Processes) -> None:
    """Leave the process group, once every process is done."""
    # DDP's reducer holds the process group: freed before the group is, or gloo's teardown can
    # wait forever once the other processes have left (seen once, at the end of a demo training).
    run.ddp = run.forward = None
    gc.collect()
    barrier(processes)
    leave(processes)
