"""Batches of model input: windows of log-mel frames, normalised and stacked, right-padded."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from fma_genre.features.crops import Window
from fma_genre.features.logmel import PADDING_VALUE, normalise_and_stack

# Where a window's frames come from: a feature file (only the window is read from disk) or
# frames already in memory (fma-genre-predict's decoded files).
FrameSource = str | np.ndarray


# Worker processes per training or scoring process: the job's `loader_workers` resource (a
# profile's set-resources; runtime.processes.run_as_job puts it here for the job's processes).
LOADER_WORKERS_VARIABLE = "FMA_GENRE_LOADER_WORKERS"
# Without it: on a GPU, enough to feed an H100 (~250 ten-second crops/s; one worker makes about
# a thousand: perf/bench_training.py); on the CPU none: the model needs every core, and loading
# a crop costs ~1% of its step.
GPU_WORKERS = 4
PREFETCH_BATCHES = 4  # per worker


def loader_workers(device: torch.device) -> int:
    configured = os.environ.get(LOADER_WORKERS_VARIABLE)
    if configured is not None:
        return int(configured)
    return GPU_WORKERS if device.type == "cuda" else 0


class LogMelWindows(torch.utils.data.Dataset):
    """Model input of a window (track, start, length) of `sources`: its frames normalised and
    pair-stacked as the extractor would."""

    def __init__(self, sources: Sequence[FrameSource]):
        self.sources = sources

    def __getitem__(self, window: Window) -> tuple[np.ndarray, int]:
        track, start, length = window
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


class WindowBatches:
    """A `WindowLoader`'s batch sampler: the windows of each batch of the current pass."""

    def __init__(self):
        self.batches: list[list[Window]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class WindowLoader:
    """Batches of (input_features, attention_mask, track index) from windows of `sources`. Its
    worker processes (`loader_workers`) live as long as it does: a run keeps one loader per split
    and starts no workers per epoch. On a GPU the batches come in pinned memory, for copies that
    do not wait (`.to(device, non_blocking=True)`)."""

    def __init__(self, sources: Sequence[FrameSource], device: torch.device, workers: int | None = None):
        self.workers = loader_workers(device) if workers is None else workers
        self.sampler = WindowBatches()
        self.loader = DataLoader(
            LogMelWindows(sources),
            batch_sampler=self.sampler,
            collate_fn=collate,
            num_workers=self.workers,
            worker_init_fn=ignore_sigterm if self.workers else None,
            persistent_workers=self.workers > 0,
            prefetch_factor=PREFETCH_BATCHES if self.workers else None,
            pin_memory=device.type == "cuda",
            # Its own generator: otherwise each new iterator draws a worker seed from the global
            # RNG, and a run resumed mid-epoch would get other dropout and SpecAugment masks.
            generator=torch.Generator().manual_seed(0),
        )

    def batches(self, windows: Sequence[Window], batch_size: int | Sequence[int]) -> Iterator:
        """One pass over `windows` in their order, in batches of `batch_size` windows, or of each
        size of a list in turn (micro-batches)."""
        if isinstance(batch_size, int):
            batch_size = [
                min(batch_size, len(windows) - start) for start in range(0, len(windows), batch_size)
            ]
        ends = np.cumsum(batch_size, dtype=int).tolist()
        self.sampler.batches = [list(windows[end - size : end]) for end, size in zip(ends, batch_size)]
        return iter(self.loader)


def window_loader(
    sources: Sequence[FrameSource] | WindowLoader,
    windows: Sequence[Window],
    batch_size: int | Sequence[int],
    device: torch.device,
) -> Iterator:
    """`WindowLoader.batches` of a loader of `sources`, or of the loader given."""
    loader = sources if isinstance(sources, WindowLoader) else WindowLoader(sources, device)
    return loader.batches(windows, batch_size)
