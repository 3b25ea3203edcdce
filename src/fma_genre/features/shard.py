"""The feature stage: every track of one shard (one FMA folder, `000` to `155`) from MP3 to a
float16 `.npy` of centred log-mel frames, with a status table saying which tracks were skipped
and why, and holding each saved track's content digest and per-bin mean levels.

This module is imported by each shard job, so it stays light: no pandas, no transformers.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import io
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from fma_genre.features.audio import UnreadableAudio, decode_mono_16k
from fma_genre.features.logmel import NUM_MEL_BINS, centre_for_float16, kaldi_log_mel
from fma_genre.io.atomic import atomic_path
from fma_genre.io.layout import STATUS_COLUMNS, shard_of

logger = logging.getLogger(__name__)

STATUS_OK = "ok"
# After the STATUS_COLUMNS, a shard's table holds each mel bin's mean log-mel level over the
# clip: the offset the stored frames lack, which the baseline's timbre statistics need.
LEVEL_COLUMNS = tuple(f"level_{b:02d}" for b in range(NUM_MEL_BINS))


class FeatureWriteError(OSError):
    """A feature file could not be written (a full disk, a read-only or failing file system):
    the machine's fault, not the clip's, so the shard stops instead of recording the track as bad."""


def extract_track(
    audio_path: str | os.PathLike, npy_path: str | os.PathLike, min_clip_seconds: float
) -> tuple[int, str, np.ndarray]:
    """Decode one clip and save its centred float16 log-mel frames to `npy_path` atomically.

    Returns the frame count, the SHA1 of the saved file and the (80,) per-bin mean levels.
    Raises `UnreadableAudio` for a clip to skip.
    """
    log_mel = kaldi_log_mel(decode_mono_16k(audio_path, min_clip_seconds))
    centred, levels = centre_for_float16(log_mel)
    npy = io.BytesIO()
    np.save(npy, centred)
    try:
        with atomic_path(npy_path) as tmp:
            tmp.write_bytes(npy.getbuffer())
    except OSError as error:
        raise FeatureWriteError(
            error.errno,
            f"{npy_path}: cannot write the features ({error.strerror}); the shard stops, rerun it once fixed",
        ) from error
    return len(log_mel), hashlib.sha1(npy.getbuffer()).hexdigest(), levels


def shard_tracks(subset_csv: str | os.PathLike, shard: str) -> list[tuple[int, str]]:
    """(track id, audio path) of the subset's tracks in `shard`, by id."""
    with open(subset_csv, newline="") as subset_file:
        return sorted(
            (int(row["track_id"]), row["audio_path"])
            for row in csv.DictReader(subset_file)
            if shard_of(int(row["track_id"])) == shard
        )


def status_row(track_id: int, audio_path: str, features_dir: Path, min_clip_seconds: float) -> list:
    """A track's row of the status table: its feature file, or why it has none."""
    npy_path = features_dir / f"{track_id:06d}.npy"
    no_levels = [""] * len(LEVEL_COLUMNS)
    try:
        n_frames, sha1, levels = extract_track(audio_path, npy_path, min_clip_seconds)
    except UnreadableAudio as reason:
        return [track_id, "", "", "", str(reason), *no_levels]
    except FeatureWriteError:
        raise
    except Exception as error:  # one bad track must not lose the shard's other tracks
        return [track_id, "", "", "", f"error: {type(error).__name__}: {error}", *no_levels]
    return [track_id, str(npy_path), n_frames, sha1, STATUS_OK, *(f"{level:.5g}" for level in levels)]


def extract_shard(
    subset_csv: str | os.PathLike,
    shard: str,
    features_dir: str | os.PathLike,
    status_csv: str | os.PathLike,
    min_clip_seconds: float,
    threads: int,
) -> None:
    """Extract the features of the tracks of `subset_csv` in `shard` and write `status_csv`.

    `subset_csv` needs `track_id` and `audio_path` columns (audio paths as the job sees them).
    A clip that is empty, undecodable or too short, or whose extraction fails otherwise, gets
    its reason in the status table and no `.npy`; the shard itself still succeeds. A feature file
    that cannot be written stops the shard (`FeatureWriteError`): no status table, so no track of
    it counts as done, and a rerun extracts the shard again.
    """
    features_dir = Path(features_dir)
    features_dir.mkdir(parents=True, exist_ok=True)
    tracks = shard_tracks(subset_csv, shard)
    # Decoding, resampling and the FFT release the GIL, so the pool's threads share the job's
    # cores. BLAS threads (the mel matrix product) would only spin against them: 3x slower
    # measured on a busy 2-core machine.
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=threads) as pool:
        rows = pool.map(lambda track: status_row(*track, features_dir, min_clip_seconds), tracks)
        progress = dict(desc=f"shard {shard}", unit="track", file=sys.stderr, mininterval=10.0)
        rows = list(tqdm(rows, total=len(tracks), **progress))

    with atomic_path(status_csv) as tmp, open(tmp, "w", newline="") as status_file:
        writer = csv.writer(status_file)
        writer.writerow(STATUS_COLUMNS + LEVEL_COLUMNS)
        writer.writerows(rows)

    # Grouped by the reason's kind ("too short", "undecodable", ...), not its details.
    status_index = STATUS_COLUMNS.index("status")
    skipped = collections.Counter(
        row[status_index].split(":")[0] for row in rows if row[status_index] != STATUS_OK
    )
    logger.info(
        "shard %s: %d of %d tracks ok, skipped: %s",
        shard,
        len(rows) - sum(skipped.values()),
        len(rows),
        dict(skipped) or "none",
    )
