"""The reference the fine-tuned model must beat: logistic regression on per-track log-mel statistics.

Each track becomes 240 numbers per its (frames, 80) log-mel matrix: the mean and standard deviation
of every mel bin over time (timbre and its spread) and the standard deviation of the frame-to-frame
differences (how fast each band moves, a cheap rhythm cue).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

N_MEL_BINS = 80


def track_statistics(frames: np.ndarray) -> np.ndarray:
    """(frames, 80) log-mel → (240,) float32: per-bin mean, std, and std of the first differences."""
    frames = np.asarray(frames, dtype=np.float32)
    return np.concatenate([frames.mean(axis=0), frames.std(axis=0), np.diff(frames, axis=0).std(axis=0)])


def _read_statistics(path: Path) -> np.ndarray | str:
    """The statistics of one feature file, or why it cannot give any."""
    if not path.is_file():
        return f"missing feature file: {path}"
    try:
        frames = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        return f"unreadable feature file: {error}"
    if frames.ndim != 2 or frames.shape[1] != N_MEL_BINS or frames.shape[0] < 2:
        return f"bad feature shape {frames.shape}"
    statistics = track_statistics(frames)
    if not np.isfinite(statistics).all():
        return "non-finite features"
    return statistics


def load_statistics(
    manifest: pd.DataFrame, base_dir: str | os.PathLike = "."
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Statistics of the manifest's tracks that have usable features.

    Returns (row positions in `manifest` of the tracks kept, their (n, 240) statistics,
    {track_id: reason} for the others; the reason is the manifest status unless that is `ok`).
    """
    kept, rows, excluded = [], [], {}
    for position, (track_id, status, path) in enumerate(
        zip(manifest["track_id"], manifest["status"], manifest["path"].fillna(""))
    ):
        result = (
            _read_statistics(Path(base_dir) / path)
            if status == "ok" and path
            else status or "no feature file"
        )
        if isinstance(result, str):
            excluded[int(track_id)] = result
        else:
            kept.append(position)
            rows.append(result)
    features = np.stack(rows) if rows else np.empty((0, 3 * N_MEL_BINS), dtype=np.float32)
    return np.asarray(kept, dtype=int), features, excluded


def fit_baseline(features: np.ndarray, labels: np.ndarray, n_jobs: int | None = None):
    """One balanced logistic regression per label on standardised statistics.

    The lbfgs solver is deterministic, so there is no seed. A label with a single class in
    training gets a constant score (0 or 1) instead of a model.
    """
    classifier = OneVsRestClassifier(
        make_pipeline(
            StandardScaler(),
            LogisticRegression(C=0.1, class_weight="balanced", max_iter=1000),
        ),
        n_jobs=n_jobs,
    )
    # Threaded BLAS on such small matrices is slower than one thread, and far slower on a busy node.
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        # One warning per constant label; the constant score is the intended behaviour.
        warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
        return classifier.fit(features, np.asarray(labels, dtype=int))


def baseline_scores(classifier, features: np.ndarray) -> np.ndarray:
    """(n, L) probabilities of each label."""
    return classifier.predict_proba(features)


def run_baseline(
    manifest: pd.DataFrame,
    label_columns: Sequence[str],
    base_dir: str | os.PathLike = ".",
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fit on the training split, score the test split.

    Returns (test track ids scored, their (n, L) scores, {test track_id: reason} for those left out).
    """
    training = manifest[manifest["split"] == "training"]
    test = manifest[manifest["split"] == "test"]
    train_rows, train_features, _ = load_statistics(training, base_dir)
    if len(train_rows) == 0:
        raise ValueError("no training track has usable features")
    classifier = fit_baseline(
        train_features, training[list(label_columns)].to_numpy()[train_rows], n_jobs=n_jobs
    )
    test_rows, test_features, excluded = load_statistics(test, base_dir)
    scores = (
        baseline_scores(classifier, test_features) if len(test_rows) else np.empty((0, len(label_columns)))
    )
    return test["track_id"].to_numpy()[test_rows], scores, excluded
