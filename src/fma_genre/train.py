"""Fine-tuning Wav2Vec2-BERT on log-mel crops, and scoring tracks with the trained model.

Training items are random crops of `crop_seconds` of each training track, a new crop every epoch.
Evaluation items are windows: each clip cut into near-equal windows of about `crop_seconds`, the
track's probabilities the mean of its windows'. Windows rather than the whole clip, because every
crop is normalised on its own (as the feature extractor normalises its whole input), so the model
meets the statistics it learnt from; `fma-genre-predict` scores audio files the same way.

The run is resumable: `state_dir` holds a checkpoint after every epoch and when SLURM's SIGTERM
arrives (then the run stops at the next step with `TrainingInterrupted`); the same call continues
from it, exactly as if never stopped. The state is deleted once the model is written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm
from transformers import AutoFeatureExtractor

from fma_genre.atomic import atomic_directory, atomic_path, write_text
from fma_genre.download import sha1_of
from fma_genre.labels import read_vocabulary
from fma_genre.logmel import NUM_MEL_BINS, STACK_STRIDE, normalise_and_stack
from fma_genre.metrics import classification_metrics
from fma_genre.model import FEATURE_EXTRACTOR_SETTINGS, load_classifier

log = logging.getLogger(__name__)

FRAMES_PER_SECOND = 100  # log-mel hop of 10 ms
PADDING_VALUE = float(FEATURE_EXTRACTOR_SETTINGS["padding_value"])
LABEL_PREFIX = "label_"
SELECTION_METRICS = ("macro_f1", "mAP")
LOG_COLUMNS = (
    "epoch step train_loss val_loss val_macro_f1 val_mAP val_top_genre_accuracy lr_backbone lr_head "
    "epoch_seconds train_clips_per_second"
).split()
STATE_FILE = "state.pt"
SUMMARY_FILE = "training_summary.json"


class TrainingInterrupted(RuntimeError):
    """SIGTERM arrived: the state is saved and the same call resumes the run."""


# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class SplitTracks:
    """The tracks of one split with usable features, and why the others have none."""

    track_ids: np.ndarray  # (n,) int
    label_columns: list[str]
    paths: list[str]
    n_frames: np.ndarray  # (n,) int: log-mel frames in each feature file
    targets: np.ndarray  # (n, labels) float32 0/1
    genre_top: list[str]  # "" where the track has no single top genre
    excluded: dict[int, str]  # track_id -> reason


def feature_file_frames(path: str) -> int | str:
    """The frame count of a feature file, or why it cannot be used. Reads the header only."""
    try:
        frames = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        return f"missing feature file: {path}"
    except (OSError, ValueError) as error:
        return f"unreadable feature file: {error}"
    if frames.ndim != 2 or frames.shape[1] != NUM_MEL_BINS or frames.shape[0] < STACK_STRIDE:
        return f"bad feature shape {frames.shape}"
    if frames.dtype != np.float16:
        return f"bad feature dtype {frames.dtype}"
    return frames.shape[0]


def read_split(manifest_csv: str | Path, split: str) -> SplitTracks:
    """The manifest's tracks of `split` whose feature file is readable and well-formed."""
    manifest = pd.read_csv(
        manifest_csv, dtype={"genre_top": str, "path": str, "status": str}, keep_default_na=False
    )
    label_columns = [c for c in manifest.columns if c.startswith(LABEL_PREFIX)]
    rows = manifest[manifest["split"] == split]
    kept, n_frames, excluded = [], [], {}
    for position, (track_id, status, path) in enumerate(zip(rows["track_id"], rows["status"], rows["path"])):
        frames_or_reason = feature_file_frames(path) if status == "ok" else status
        if isinstance(frames_or_reason, str):
            excluded[int(track_id)] = frames_or_reason
        else:
            kept.append(position)
            n_frames.append(frames_or_reason)
    rows = rows.iloc[kept]
    if excluded:
        log.warning(
            "%s split: %d tracks excluded, e.g. %s", split, len(excluded), next(iter(excluded.items()))
        )
    return SplitTracks(
        track_ids=rows["track_id"].to_numpy(dtype=int),
        label_columns=label_columns,
        paths=rows["path"].tolist(),
        n_frames=np.asarray(n_frames, dtype=int),
        targets=rows[label_columns].to_numpy(dtype=np.float32),
        genre_top=rows["genre_top"].tolist(),
        excluded=excluded,
    )


# A window of a track: (track index, first frame, number of frames).
Window = tuple[int, int, int]


def random_crops(n_frames: np.ndarray, crop_frames: int, rng: np.random.Generator) -> list[Window]:
    """One random crop per track, tracks in random order: one training epoch."""
    lengths = np.minimum(n_frames, crop_frames)
    starts = rng.integers(0, n_frames - lengths + 1)
    return [(int(t), int(starts[t]), int(lengths[t])) for t in rng.permutation(len(n_frames))]


def evaluation_windows(n_frames: np.ndarray, window_frames: int) -> list[Window]:
    """Every track cut into near-equal windows of about `window_frames` frames."""
    windows = []
    for track, length in enumerate(n_frames):
        n_windows = max(1, round(length / window_frames))
        bounds = np.linspace(0, length, n_windows + 1).astype(int)
        windows += [(track, int(start), int(end - start)) for start, end in zip(bounds[:-1], bounds[1:])]
    return windows


class LogMelWindows(torch.utils.data.Dataset):
    """Model input of each window: only the window is read from disk, then normalised and stacked."""

    def __init__(self, paths: Sequence[str], windows: Sequence[Window]):
        self.paths = paths
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        track, start, length = self.windows[index]
        frames = np.load(self.paths[track], mmap_mode="r")[start : start + length]
        return normalise_and_stack(frames), track


def collate(items: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad to the longest window with the extractor's padding value; mask the padding out."""
    longest = max(len(features) for features, _ in items)
    # Built in numpy: small single-threaded copies, no OpenMP start-up per batch.
    input_features = np.full((len(items), longest, items[0][0].shape[1]), PADDING_VALUE, dtype=np.float32)
    attention_mask = np.zeros((len(items), longest), dtype=np.int64)
    for row, (features, _) in enumerate(items):
        input_features[row, : len(features)] = features
        attention_mask[row, : len(features)] = 1
    tracks = torch.tensor([track for _, track in items])
    return torch.from_numpy(input_features), torch.from_numpy(attention_mask), tracks


def window_loader(
    paths: Sequence[str], windows: Sequence[Window], batch_size: int, device: torch.device, threads: int
):
    # On CPU the model needs every core and loading a crop costs ~1% of its step: load in-process.
    # On a GPU, worker processes read and normalise the next batches while it computes.
    workers = max(1, threads - 1) if device.type == "cuda" else 0
    return DataLoader(
        LogMelWindows(paths, windows),
        batch_size=batch_size,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        # Its own generator: otherwise each new iterator draws a worker seed from the global RNG,
        # and a run resumed mid-epoch would get other dropout and SpecAugment masks.
        generator=torch.Generator().manual_seed(0),
    )


# ---------------------------------------------------------------------------------------------
# Model pieces


def best_device() -> tuple[torch.device, str]:
    """The first visible CUDA device if any (CUDA_VISIBLE_DEVICES applies), else the CPU; and its name."""
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.cuda.get_device_name()
    return torch.device("cpu"), f"CPU ({torch.get_num_threads()} threads)"


def parameter_groups(
    model: torch.nn.Module, lr_backbone: float, lr_head: float, weight_decay: float
) -> list[dict]:
    """AdamW groups: backbone and head at their own learning rates; no decay on biases and norms."""
    groups = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            part = "backbone" if name.startswith("wav2vec2_bert.") else "head"
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


@torch.no_grad()
def window_logits(
    model, tracks: SplitTracks, window_frames: int, batch_size: int, device, threads: int, desc: str
):
    """(windows, labels) float32 logits of every evaluation window, and each window's track index."""
    model.eval()
    windows = evaluation_windows(tracks.n_frames, window_frames)
    logits, window_tracks = [], []
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    for features, mask, track in tqdm(
        window_loader(tracks.paths, windows, batch_size, device, threads),
        desc=desc,
        file=sys.stderr,
        leave=False,
    ):
        with autocast:
            logits.append(
                model(input_features=features.to(device), attention_mask=mask.to(device)).logits.float().cpu()
            )
        window_tracks.append(track)
    return torch.cat(logits), torch.cat(window_tracks)


def track_probabilities(logits: torch.Tensor, window_tracks: torch.Tensor, n_tracks: int) -> np.ndarray:
    """(tracks, labels) mean sigmoid probability over each track's windows."""
    sums = torch.zeros(n_tracks, logits.shape[1]).index_add_(0, window_tracks, torch.sigmoid(logits))
    return (sums / torch.bincount(window_tracks, minlength=n_tracks)[:, None]).numpy()


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class Progress:
    """Everything a resumed run needs besides the model, optimiser, scheduler and RNG states."""

    epochs_done: int = 0
    step: int = 0
    # The unfinished epoch, when SIGTERM stopped one.
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


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[threading.Event]:
    """An event set by SIGTERM (SLURM's warning before the time limit) instead of dying at once."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def rng_states() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state(),  # SpecAugment's time masks draw from numpy's global RNG
    }


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    np.random.set_state(states["numpy"])


def write_training_log(rows: list[dict], path: str | Path) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=LOG_COLUMNS).to_csv(tmp, index=False, float_format="%.6g")


def train(
    manifest_csv: str | Path,
    vocabulary_tsv: str | Path,
    pretrained_dir: str | Path,
    model_out_dir: str | Path,
    training_log_csv: str | Path,
    state_dir: str | Path,
    *,
    epochs: int = 20,
    batch_size: int = 16,
    crop_seconds: float = 10.0,
    lr_backbone: float = 1e-5,
    lr_head: float = 1e-3,
    weight_decay: float = 0.01,
    warmup_fraction: float = 0.1,
    grad_clip: float = 1.0,
    freeze_backbone: bool = False,
    patience: int | None = 5,
    selection_metric: str = "macro_f1",
    max_pos_weight: float = 100.0,
    seed: int = 0,
    threads: int = 2,
    eval_batch_size: int = 16,
    base_model: str | None = None,
) -> dict:
    """Fine-tune the pretrained model, keep the epoch with the best validation `selection_metric`.

    Writes the best model to `model_out_dir` (with `training_summary.json`: best epoch, time,
    throughput, excluded tracks) and one row per epoch to `training_log_csv`; returns the summary.
    `patience`: stop after that many epochs without improvement (None: never). `base_model`
    names the pretrained model in the model card (e.g. its hub id; default: `pretrained_dir`).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if selection_metric not in SELECTION_METRICS:
        raise ValueError(f"selection_metric must be one of {SELECTION_METRICS}, got {selection_metric!r}")
    # Everything that changes the result: a saved state from other settings is not resumed.
    settings = dict(
        manifest_csv=str(manifest_csv),
        # Recomputed features make an old state stale even under the same path.
        manifest_sha1=sha1_of(manifest_csv),
        pretrained_dir=str(pretrained_dir),
        batch_size=batch_size,
        crop_seconds=crop_seconds,
        lr_backbone=lr_backbone,
        lr_head=lr_head,
        weight_decay=weight_decay,
        warmup_fraction=warmup_fraction,
        grad_clip=grad_clip,
        freeze_backbone=freeze_backbone,
        selection_metric=selection_metric,
        max_pos_weight=max_pos_weight,
        seed=seed,
    )
    torch.set_num_threads(threads)
    device, device_name = best_device()
    log.info("training on %s", device_name)
    torch.manual_seed(seed)  # the new head's initial weights, dropout
    np.random.seed(seed)  # SpecAugment

    vocabulary = read_vocabulary(vocabulary_tsv)
    label_names = [genre.title for genre in vocabulary]
    top_level_mask = np.array([genre.top_level for genre in vocabulary])
    training, validation = read_split(manifest_csv, "training"), read_split(manifest_csv, "validation")
    if training.label_columns != [genre.column for genre in vocabulary]:
        raise ValueError(f"{manifest_csv}: the label columns are not {vocabulary_tsv}'s labels in its order")
    if not len(training.track_ids) or not len(validation.track_ids):
        raise ValueError(f"{manifest_csv}: no usable training or validation tracks")
    crop_frames = round(crop_seconds * FRAMES_PER_SECOND)

    model = load_classifier(pretrained_dir, label_names, freeze_backbone=freeze_backbone, device=device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameter_groups(model, lr_backbone, lr_head, weight_decay))
    steps_per_epoch = math.ceil(len(training.track_ids) / batch_size)
    total_steps = epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(max(1, round(warmup_fraction * total_steps)), total_steps)
    )
    loss_fn = torch.nn.BCEWithLogitsLoss(
        pos_weight=positive_weights(training.targets, max_pos_weight).to(device)
    )
    train_targets = torch.from_numpy(training.targets)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    state_path = Path(state_dir) / STATE_FILE
    progress, best_weights = Progress(), None
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if state["settings"] == settings:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            set_rng_states(state["rng"])
            progress, best_weights = Progress(**state["progress"]), state["best_weights"]
            log.info(
                "resuming from %s: %d epochs and %d batches done",
                state_path,
                progress.epochs_done,
                progress.batches_done,
            )
        else:
            log.warning("ignoring %s: saved with other settings %s", state_path, state["settings"])

    def save_state() -> None:
        state = dict(
            settings=settings,
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            rng=rng_states(),
            progress=asdict(progress),
            best_weights=best_weights,
        )
        with atomic_path(state_path) as tmp:
            torch.save(state, tmp)

    def learning_rate(part: str) -> float:
        return next((group["lr"] for group in optimizer.param_groups if group["part"] == part), 0.0)

    def patience_left() -> bool:
        return patience is None or progress.epochs_without_improvement < patience

    with stop_on_sigterm() as stop_requested:
        while progress.epochs_done < epochs and patience_left():
            epoch = progress.epochs_done + 1
            # The epoch's crops derive from (seed, epoch) alone, so a resumed epoch gets the same.
            crops = random_crops(training.n_frames, crop_frames, np.random.default_rng([seed, epoch]))
            crops = crops[progress.batches_done * batch_size :]
            model.train()
            started = time.perf_counter()
            batches = tqdm(
                window_loader(training.paths, crops, batch_size, device, threads),
                desc=f"epoch {epoch}/{epochs}",
                file=sys.stderr,
                initial=progress.batches_done,
                total=steps_per_epoch,
            )
            for features, mask, tracks in batches:
                with autocast:
                    logits = model(input_features=features.to(device), attention_mask=mask.to(device)).logits
                loss = loss_fn(logits.float(), train_targets[tracks].to(device))
                if not torch.isfinite(loss):
                    track_ids = training.track_ids[tracks.numpy()].tolist()
                    raise FloatingPointError(
                        f"non-finite training loss {loss.item()} at step {progress.step + 1} "
                        f"(epoch {epoch}); track ids of the batch: {track_ids}"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, grad_clip)
                optimizer.step()
                scheduler.step()
                progress.step += 1
                progress.batches_done += 1
                progress.epoch_loss_sum += loss.item() * len(tracks)
                progress.epoch_clips += len(tracks)
                batches.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
                if stop_requested.is_set():
                    progress.epoch_train_seconds += time.perf_counter() - started
                    save_state()
                    raise TrainingInterrupted(
                        f"SIGTERM: stopped at step {progress.step} (epoch {epoch}); state in {state_path}"
                    )
            train_seconds = progress.epoch_train_seconds + time.perf_counter() - started

            logits, window_tracks = window_logits(
                model, validation, crop_frames, eval_batch_size, device, threads, desc=f"validation {epoch}"
            )
            # Per window, like the training loss; the metrics below are per track.
            val_loss = loss_fn(
                logits.to(device), torch.from_numpy(validation.targets)[window_tracks].to(device)
            ).item()
            metrics = classification_metrics(
                validation.targets,
                track_probabilities(logits, window_tracks, len(validation.track_ids)),
                label_names,
                top_level_mask,
                validation.genre_top,
            )
            row = dict(
                epoch=epoch,
                step=progress.step,
                train_loss=progress.epoch_loss_sum / progress.epoch_clips,
                val_loss=val_loss,
                val_macro_f1=metrics["macro_f1"],
                val_mAP=metrics["mAP"],
                val_top_genre_accuracy=metrics["top_genre_accuracy"],
                lr_backbone=learning_rate("backbone"),
                lr_head=learning_rate("head"),
                epoch_seconds=progress.epoch_train_seconds + time.perf_counter() - started,
                train_clips_per_second=progress.epoch_clips / train_seconds,
            )
            progress.log_rows.append(row)
            progress.training_seconds += row["epoch_seconds"]
            progress.train_seconds += train_seconds
            progress.clips_trained += progress.epoch_clips
            score = metrics[selection_metric] if math.isfinite(metrics[selection_metric]) else -math.inf
            if score > progress.best_metric or best_weights is None:
                progress.best_metric, progress.best_epoch = score, epoch
                progress.epochs_without_improvement = 0
                best_weights = {
                    name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()
                }
            else:
                progress.epochs_without_improvement += 1
            progress.epochs_done, progress.batches_done = epoch, 0
            progress.epoch_loss_sum, progress.epoch_clips, progress.epoch_train_seconds = 0.0, 0, 0.0
            log.info(
                "epoch %d/%d: %s; best %s %.4f at epoch %d",
                epoch,
                epochs,
                ", ".join(f"{name} {value:.4g}" for name, value in row.items() if name != "epoch"),
                selection_metric,
                progress.best_metric,
                progress.best_epoch,
            )
            save_state()
            write_training_log(progress.log_rows, training_log_csv)

    if not patience_left():
        log.info("early stop: no better validation %s in the last %d epochs", selection_metric, patience)
    model.load_state_dict(best_weights)
    best = progress.log_rows[progress.best_epoch - 1]
    summary = dict(
        base_model=base_model or str(pretrained_dir),
        best_epoch=progress.best_epoch,
        selection_metric=selection_metric,
        validation={name: best[f"val_{name}"] for name in ("macro_f1", "mAP", "top_genre_accuracy", "loss")},
        epochs_trained=progress.epochs_done,
        stopped_early=progress.epochs_done < epochs,
        training_seconds=progress.training_seconds,
        train_clips_per_second=progress.clips_trained / progress.train_seconds,
        device=device_name,
        settings=settings | dict(epochs=epochs, patience=patience),
        excluded=dict(training=training.excluded, validation=validation.excluded),
    )
    save_model(model, pretrained_dir, model_out_dir, summary)
    state_path.unlink(missing_ok=True)
    log.info(
        "best epoch %d (validation %s %.3f) saved to %s",
        progress.best_epoch,
        selection_metric,
        progress.best_metric,
        model_out_dir,
    )
    return summary


def model_card(summary: dict, label_names: Sequence[str]) -> str:
    """README.md of the saved model: what it is, its validation scores, how it was trained."""
    validation = summary["validation"]
    scores = ", ".join(
        f"{name} {validation[name]:.4f}" for name in ("macro_f1", "mAP", "top_genre_accuracy", "loss")
    )
    settings = "\n".join(f"- {name}: {value}" for name, value in summary["settings"].items())
    return f"""---
base_model: {summary["base_model"]}
pipeline_tag: audio-classification
tags: [music-genre-classification, multi-label, fma]
---
# Wav2Vec2-BERT music-genre classifier (FMA)

`{summary["base_model"]}` fine-tuned on log-mel crops of Free Music Archive clips for
{len(label_names)} genres, multi-label: one sigmoid score per genre (`transformers.pipeline(
"audio-classification")` applies the sigmoid for the `multi_label_classification` problem type).

Validation at the best epoch, {summary["best_epoch"]} of {summary["epochs_trained"]} \
(selected on {summary["selection_metric"]}): {scores}.

Trained on {summary["device"]} in {summary["training_seconds"]:.0f} s \
({summary["train_clips_per_second"]:.1f} training clips/s).

## Training settings
{settings}

## Labels
{", ".join(label_names)}
"""


def save_model(model, pretrained_dir: str | Path, model_out_dir: str | Path, summary: dict) -> None:
    """The model, its feature extractor config, model card and training summary, written atomically."""
    with atomic_directory(model_out_dir) as staging:
        model.save_pretrained(staging)
        AutoFeatureExtractor.from_pretrained(pretrained_dir).save_pretrained(staging)
        write_text(staging / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
        write_text(staging / "README.md", model_card(summary, list(model.config.id2label.values())))


def score_tracks(
    model_dir: str | Path,
    manifest_csv: str | Path,
    split: str,
    *,
    batch_size: int = 16,
    threads: int = 2,
    window_seconds: float | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Sigmoid probabilities of a trained model for the tracks of one split.

    Returns (track ids, (tracks, labels) float32 probabilities in the model's label order,
    {track_id: reason} for the split's tracks without usable features). Windows are of the
    training crop length (from training_summary.json) unless `window_seconds` says otherwise.
    """
    torch.set_num_threads(threads)
    device, device_name = best_device()
    if window_seconds is None:
        window_seconds = json.loads((Path(model_dir) / SUMMARY_FILE).read_text())["settings"]["crop_seconds"]
    tracks = read_split(manifest_csv, split)
    model = load_classifier(model_dir, device=device)
    if not len(tracks.track_ids):
        return tracks.track_ids, np.zeros((0, model.config.num_labels), dtype=np.float32), tracks.excluded
    log.info("scoring %d %s tracks on %s", len(tracks.track_ids), split, device_name)
    logits, window_tracks = window_logits(
        model,
        tracks,
        round(window_seconds * FRAMES_PER_SECOND),
        batch_size,
        device,
        threads,
        desc=f"scoring {split}",
    )
    return (
        tracks.track_ids,
        track_probabilities(logits, window_tracks, len(tracks.track_ids)),
        tracks.excluded,
    )
