"""Score tables: one row per track of a split, its status and every label's probability.

The `score` rule (the model) and the `baseline` rule write them; `evaluate` and the plots read
them, so metrics never need the model itself.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from fma_genre.io.atomic import atomic_path

STATUS = "status"


def write_scores_csv(
    path: str | os.PathLike, track_ids, scores, label_columns, excluded: dict[int, str]
) -> None:
    """Scores of the scored tracks (status `ok`) and the excluded ones with their reason."""
    scored = pd.DataFrame(np.asarray(scores, dtype=float), columns=list(label_columns))
    scored.insert(0, STATUS, "ok")
    scored.insert(0, "track_id", np.asarray(track_ids, dtype=int))
    left_out = pd.DataFrame({"track_id": list(excluded), STATUS: list(excluded.values())}).astype(
        {"track_id": int}
    )
    table = pd.concat([scored, left_out], ignore_index=True).sort_values("track_id")
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


def read_scores_csv(path: str | os.PathLike, label_columns) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """(track ids scored, their (n, labels) scores, {track_id: reason} for those left out)."""
    table = pd.read_csv(path, keep_default_na=False, dtype={STATUS: str})
    missing = [c for c in ("track_id", STATUS, *label_columns) if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: score table lacks column(s) {missing[:5]}")
    ok = table[STATUS] == "ok"
    excluded = dict(zip(table.loc[~ok, "track_id"].astype(int), table.loc[~ok, STATUS]))
    scored = table[ok]
    return scored["track_id"].to_numpy(int), scored[list(label_columns)].to_numpy(float), excluded


def common_tracks(*track_ids) -> list[int]:
    """The tracks that every table scored, by id: the model and the baseline are compared there."""
    return sorted(set.intersection(*(set(map(int, ids)) for ids in track_ids)))


def rows_for(track_ids, scores: np.ndarray, keep: list[int]) -> np.ndarray:
    """The rows of `scores` (one per id of `track_ids`) for the ids `keep`, in that order."""
    row_of = {int(t): i for i, t in enumerate(track_ids)}
    return scores[[row_of[t] for t in keep]]
