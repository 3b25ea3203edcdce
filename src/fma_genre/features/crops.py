"""The pieces of a track's log-mel frames that the model sees.

Training items are random crops of `crop_seconds` of each training track, a new crop every epoch.
Scoring items are windows: each clip cut into near-equal windows of about the crop length, the
track's probabilities the mean of its windows'. Windows rather than the whole clip, because every
crop is normalised on its own (as the feature extractor normalises its whole input), so the model
meets the statistics it learnt from.
"""

from __future__ import annotations

import numpy as np

from fma_genre.features.logmel import FRAMES_PER_SECOND

# A window of a track: (track index, first frame, number of frames).
Window = tuple[int, int, int]


def frames_of(seconds: float) -> int:
    """Log-mel frames in `seconds` of audio: a crop's or a window's length."""
    return round(seconds * FRAMES_PER_SECOND)


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
