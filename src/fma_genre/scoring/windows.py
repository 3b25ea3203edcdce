"""Scoring with a model: every track cut into windows of the training crop length, the label
probabilities averaged over a track's windows. One path for validation during training, the
`score` rule (feature files of a split) and `fma-genre-predict` (any audio files).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fma_genre.features.audio import UnreadableAudio, decode_mono_16k
from fma_genre.features.crops import evaluation_windows, frames_of
from fma_genre.features.loader import FrameSource, WindowLoader, window_loader
from fma_genre.features.logmel import STACK_STRIDE, kaldi_log_mel
from fma_genre.features.splits import read_split
from fma_genre.models.classifier import load_classifier
from fma_genre.runtime.devices import autocast, best_device
from fma_genre.runtime.processes import Processes, any_process, gather_in_rank_order

log = logging.getLogger(__name__)


class ScoringStopped(Exception):
    """Scoring was asked to stop (SIGTERM during validation)."""


def window_frames_of(model) -> int:
    """The scoring window of a trained model: its training crop length, saved in its config."""
    return frames_of(model.config.window_seconds)


@torch.no_grad()
def outputs_by_batch(
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    sources: Sequence[FrameSource] | WindowLoader,
    n_frames: Sequence[int],
    window_frames: int,
    batch_size: int,
    device: torch.device,
    desc: str,
    stop: threading.Event | None = None,
    progress: bool = True,
    processes: Processes = Processes(),
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """`forward(input_features, attention_mask)` of this process's part of the scoring windows
    of `sources` (or of the loader's), batch by batch: (outputs as float32 on the CPU, each
    window's track index). The processes take contiguous parts, in rank order.

    Raises `ScoringStopped` between batches once `stop` is set (one process only: several check
    it once they are done). `progress`: a tqdm bar on stderr.
    """
    windows = evaluation_windows(np.asarray(n_frames), window_frames)
    part = np.array_split(np.arange(len(windows)), processes.world_size)[processes.rank]
    batches = window_loader(sources, [windows[i] for i in part], batch_size, device)
    show = progress and processes.is_main
    for features, mask, track in tqdm(batches, desc=desc, file=sys.stderr, leave=False, disable=not show):
        if stop is not None and stop.is_set() and not processes.distributed:
            raise ScoringStopped(desc)
        with autocast(device):
            inputs = features.to(device, non_blocking=True), mask.to(device, non_blocking=True)
            yield forward(*inputs).float().cpu(), track


def window_outputs(
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *args,
    stop: threading.Event | None = None,
    processes: Processes = Processes(),
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`outputs_by_batch` (the same arguments) of every window, gathered in window order on every
    process."""
    batches = list(outputs_by_batch(forward, *args, stop=stop, processes=processes, **kwargs))
    mine = (torch.cat([o for o, _ in batches]), torch.cat([t for _, t in batches])) if batches else None
    parts = [part for part in gather_in_rank_order(mine, processes) if part is not None]
    if stop is not None and processes.distributed and any_process(stop.is_set(), processes):
        raise ScoringStopped("SIGTERM")
    return torch.cat([outputs for outputs, _ in parts]), torch.cat([tracks for _, tracks in parts])


def window_logits(model, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """(windows, labels) logits of every scoring window, and each window's track index
    (the arguments after `model` are `window_outputs`')."""
    model.eval()

    def logits(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return model(input_features=features, attention_mask=mask).logits

    return window_outputs(logits, *args, **kwargs)


def track_probabilities(logits: torch.Tensor, window_tracks: torch.Tensor, n_tracks: int) -> np.ndarray:
    """(tracks, labels) mean sigmoid probability over each track's windows."""
    sums = torch.zeros(n_tracks, logits.shape[1]).index_add_(0, window_tracks, torch.sigmoid(logits))
    return (sums / torch.bincount(window_tracks, minlength=n_tracks)[:, None]).numpy()


def score_split(
    model_dir: str | Path,
    manifest_csv: str | Path,
    split: str,
    *,
    batch_size: int = 16,
    threads: int = 2,
    labels: Sequence[str] | None = None,
    processes: Processes = Processes(),
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Probabilities of a trained model for the tracks of one split (the windows split between
    `processes`, every one of which gets them all).

    Returns (track ids, (tracks, labels) float32 probabilities in the model's label order,
    {track_id: reason} for the split's tracks without usable features). `labels`: the label
    order the caller expects (e.g. the vocabulary's); a model with others is refused.
    """
    torch.set_num_threads(threads)
    device, device_name = best_device()
    tracks = read_split(manifest_csv, split)
    model = load_classifier(model_dir, device=device)
    model_labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if labels is not None and list(labels) != model_labels:
        raise ValueError(
            f"{model_dir} has the labels {model_labels[:5]}... ({len(model_labels)}), "
            f"expected {list(labels)[:5]}... ({len(labels)}): the model is not this vocabulary's"
        )
    if not len(tracks.track_ids):
        return tracks.track_ids, np.zeros((0, model.config.num_labels), dtype=np.float32), tracks.excluded
    log.info(
        "scoring %d %s tracks on %s x %d processes",
        len(tracks.track_ids),
        split,
        device_name,
        processes.world_size,
    )
    logits, window_tracks = window_logits(
        model,
        tracks.paths,
        tracks.n_frames,
        window_frames_of(model),
        batch_size,
        device,
        desc=f"scoring {split}",
        processes=processes,
    )
    return (
        tracks.track_ids,
        track_probabilities(logits, window_tracks, len(tracks.track_ids)),
        tracks.excluded,
    )


def score_audio_files(
    model,
    paths: Sequence[str | Path],
    *,
    batch_size: int,
    device: torch.device,
    threads: int,
    min_seconds: float = 0.0,
    progress: bool = False,
) -> list[np.ndarray | str]:
    """Per file, its (labels,) probabilities, or why it could not be read or is too short to
    judge (under `min_seconds`).

    Files are decoded in parallel threads (decoding releases the GIL), then the windows of all
    readable files are scored in shared batches.
    """

    def log_mel_or_reason(path) -> np.ndarray | str:
        try:
            frames = kaldi_log_mel(decode_mono_16k(path, min_seconds))
        except (UnreadableAudio, FileNotFoundError) as error:
            return str(error)
        return frames if len(frames) >= STACK_STRIDE else "too short: under 35 ms of audio"

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(log_mel_or_reason, paths))
    readable = [i for i, result in enumerate(results) if not isinstance(result, str)]
    if readable:
        sources = [results[i] for i in readable]
        logits, window_tracks = window_logits(
            model,
            sources,
            [len(s) for s in sources],
            window_frames_of(model),
            batch_size,
            device,
            desc="scoring files",
            progress=progress,
        )
        for i, probabilities in zip(readable, track_probabilities(logits, window_tracks, len(sources))):
            results[i] = probabilities
    return results
