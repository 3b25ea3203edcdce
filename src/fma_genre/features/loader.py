"""Batches of model input: windows of log-mel frames, normalised and stacked, right-padded."""

from __future__ import annotations

import signal
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from fma_genre.features.crops import Window
from fma_genre.features.logmel import PADDING_VALUE, normalise_and_stack

# Where a window's frames come from: a feature file (only the window is read from disk) or
# frames already in memory (fma-genre-predict's decoded files).
FrameSource = str | np.ndarray


class LogMelWindows(torch.utils.data.Dataset):
    """Model input of each window: its frames normalised and pair-stacked as the extractor would."""

    def __init__(self, sources: Sequence[FrameSource], windows: Sequence[Window]):
        self.sources = sources
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        track, start, length = self.windows[index]
        source = self.sources[track]
        frames = source if isinstance(source, np.ndarray) else np.load(source, mmap_mode="r")
        return normalise_and_stack(frames[start : start + length]), track


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


def ignore_sigterm(worker_id: int) -> None:
    """A loader worker outlives SIGTERM. SLURM signals every process of the job step, and torch's
    own worker handler would die of it, which fails the training process with "DataLoader worker
    exited unexpectedly" before it can write its checkpoint. The workers still stop when the
    loader shuts them down, or when the training process is gone."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def window_loader(
    sources: Sequence[FrameSource],
    windows: Sequence[Window],
    batch_size: int | Sequence[int],
    device: torch.device,
    threads: int,
) -> DataLoader:
    """Batches of (input_features, attention_mask, track index) in the order of `windows`, of
    `batch_size` windows, or of each size of a list in turn (micro-batches)."""
    # On CPU the model needs every core and loading a crop costs ~1% of its step: load in-process.
    # On a GPU, worker processes read and normalise the next batches while it computes.
    workers = threads - 1 if device.type == "cuda" else 0
    if isinstance(batch_size, int):
        batches = [
            range(start, min(start + batch_size, len(windows)))
            for start in range(0, len(windows), batch_size)
        ]
    else:
        ends = np.cumsum(batch_size, dtype=int).tolist()
        batches = [range(end - size, end) for end, size in zip(ends, batch_size)]
    return DataLoader(
        LogMelWindows(sources, windows),
        batch_sampler=batches,
        collate_fn=collate,
        num_workers=workers,
        worker_init_fn=ignore_sigterm if workers else None,
        pin_memory=device.type == "cuda",
        # Its own generator: otherwise each new iterator draws a worker seed from the global RNG,
        # and a run resumed mid-epoch would get other dropout and SpecAugment masks.
        generator=torch.Generator().manual_seed(0),
    )
