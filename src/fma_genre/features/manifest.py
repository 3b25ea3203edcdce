"""The feature manifest: every track of the subset, its labels, and its feature file or why none."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import pandas as pd

from fma_genre.data.vocabulary import LABEL_PREFIX
from fma_genre.io.atomic import atomic_path
from fma_genre.io.layout import STATUS_COLUMNS

log = logging.getLogger(__name__)

NO_STATUS = "no feature status (its shard did not report it)"


def build_manifest(
    multihot_csv: str | os.PathLike,
    status_csvs: Iterable[str | os.PathLike],
    manifest_csv: str | os.PathLike,
) -> pd.DataFrame:
    """Join the labels with the shards' status tables; write and return the manifest.

    Columns: track_id, split, genre_top, path, n_frames, sha1 (of the feature file), status,
    then the label columns. The feature digests make the manifest's own SHA1 change with any
    feature's content, which is what training keys its resume state by.
    """
    labels = pd.read_csv(multihot_csv, dtype={"genre_top": str}, keep_default_na=False)
    statuses = [
        pd.read_csv(p, dtype={"path": str, "sha1": str, "status": str}, keep_default_na=False)
        for p in status_csvs
    ]
    status = (
        pd.concat(statuses, ignore_index=True) if statuses else pd.DataFrame(columns=list(STATUS_COLUMNS))
    )
    missing = [c for c in STATUS_COLUMNS if c not in status.columns]
    if missing:
        raise ValueError(f"feature status tables lack column(s) {missing}")
    manifest = labels[["track_id", "split", "genre_top"]].merge(
        status[list(STATUS_COLUMNS)], on="track_id", how="left"
    )
    manifest[["path", "sha1"]] = manifest[["path", "sha1"]].fillna("")
    # Skipped tracks have an empty n_frames in their shard's table.
    manifest["n_frames"] = pd.to_numeric(manifest["n_frames"], errors="coerce").fillna(0).astype(int)
    manifest["status"] = manifest["status"].fillna(NO_STATUS)
    label_columns = [c for c in labels.columns if c.startswith(LABEL_PREFIX)]
    manifest = pd.concat([manifest, labels[label_columns]], axis=1)
    with atomic_path(manifest_csv) as tmp:
        manifest.to_csv(tmp, index=False)
    counts = manifest["status"].value_counts()
    log.info(
        "%s: %d tracks, %d with features; skipped: %s",
        manifest_csv,
        len(manifest),
        counts.get("ok", 0),
        counts.drop("ok", errors="ignore").to_dict() or "none",
    )
    return manifest
