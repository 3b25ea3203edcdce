"""The tracks of one split that have usable features, read back from the manifest.

No torch here: the baseline and evaluation read splits too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fma_genre.data.vocabulary import LABEL_PREFIX
from fma_genre.features.logmel import NUM_MEL_BINS, STACK_STRIDE

log = logging.getLogger(__name__)

MANIFEST_DTYPES = {"genre_top": str, "path": str, "sha1": str, "status": str}


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


def read_manifest(manifest_csv: str | Path) -> pd.DataFrame:
    return pd.read_csv(manifest_csv, dtype=MANIFEST_DTYPES, keep_default_na=False)


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
    manifest = read_manifest(manifest_csv)
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
