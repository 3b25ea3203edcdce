"""The classical reference the fine-tuned model must beat: one-vs-rest logistic regression on
per-track log-mel statistics, its regularisation chosen on the validation split.

Each track becomes 300 numbers: per mel bin, its absolute mean level (timbre: kept by the feature
stage beside the centred frames), its standard deviation over time and the standard deviation of
its frame-to-frame differences (how fast each band moves, a cheap rhythm cue); then an MFCC-style
summary, the mean and standard deviation over time of the first 20 cepstral coefficients
(orthonormal DCT-II of the log-mel frames, as MFCCs are made) and the standard deviation of their
differences. `with_levels=False` leaves out everything that needs the absolute levels (the
per-bin and cepstral means): the baseline as it was before the levels were kept.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.fft
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from fma_genre.data.vocabulary import Vocabulary
from fma_genre.evaluation.metrics import classification_metrics, tune_thresholds
from fma_genre.features.shard import LEVEL_COLUMNS
from fma_genre.features.splits import SplitTracks, read_split
from fma_genre.io.atomic import write_text
from fma_genre.scoring.tables import write_scores_csv

log = logging.getLogger(__name__)

NAME = "logistic regression on log-mel and MFCC statistics"
N_CEPSTRA = 20
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)  # inverse L2 strengths tried on the validation split


def track_statistics(centred: np.ndarray, levels: np.ndarray, with_levels: bool = True) -> np.ndarray:
    """(frames, 80) centred log-mel + (80,) per-bin mean levels → (300,) float32 statistics
    (or 200 without the levels)."""
    centred = np.asarray(centred, dtype=np.float32)
    cepstra = scipy.fft.dct(centred, type=2, norm="ortho", axis=1)[:, :N_CEPSTRA]
    spread = [
        centred.std(axis=0),
        np.diff(centred, axis=0).std(axis=0),
        cepstra.std(axis=0),
        np.diff(cepstra, axis=0).std(axis=0),
    ]
    if not with_levels:
        return np.concatenate(spread).astype(np.float32)
    # The DCT is linear: the cepstral mean of the absolute frames is the DCT of the mean levels.
    level_cepstra = scipy.fft.dct(np.asarray(levels, dtype=np.float64), type=2, norm="ortho")[:N_CEPSTRA]
    return np.concatenate([levels, level_cepstra, *spread]).astype(np.float32)


def read_levels(status_csvs: Sequence[str | os.PathLike]) -> dict[int, np.ndarray]:
    """{track_id: (80,) mean levels} of every track the feature shards saved."""
    tables = [pd.read_csv(path, dtype={"status": str}, keep_default_na=False) for path in status_csvs]
    table = pd.concat(tables, ignore_index=True)
    table = table[table["status"] == "ok"]
    missing = [c for c in ("track_id", *LEVEL_COLUMNS) if c not in table.columns]
    if missing:
        raise ValueError(f"feature status tables lack column(s) {missing[:3]}: rerun the feature stage")
    levels = table[list(LEVEL_COLUMNS)].to_numpy(dtype=np.float32)
    return dict(zip(table["track_id"].astype(int), levels))


def split_statistics(
    tracks: SplitTracks, levels: dict[int, np.ndarray], with_levels: bool = True
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """(positions kept in `tracks`, their statistics, {track_id: reason} for the others)."""
    kept, rows, excluded = [], [], {}
    for position, (track_id, path) in enumerate(zip(tracks.track_ids, tracks.paths)):
        track_levels = levels.get(int(track_id))
        if track_levels is None:
            excluded[int(track_id)] = "no mean levels in its shard's status table"
            continue
        statistics = track_statistics(np.load(path), track_levels, with_levels)
        if np.isfinite(statistics).all():
            kept.append(position)
            rows.append(statistics)
        else:
            excluded[int(track_id)] = "non-finite features"
    features = np.stack(rows) if rows else np.empty((0, 0), dtype=np.float32)
    return np.asarray(kept, dtype=int), features, excluded


def fit_baseline(features: np.ndarray, labels: np.ndarray, c: float, n_jobs: int | None = None):
    """One balanced logistic regression per label on standardised statistics.

    The lbfgs solver is deterministic, so there is no seed. A label with a single class in
    training gets a constant score (0 or 1) instead of a model.
    """
    classifier = OneVsRestClassifier(
        make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000)),
        n_jobs=n_jobs,
    )
    # Threaded BLAS on such small matrices is slower than one thread, and far slower on a busy node.
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        # One warning per constant label; the constant score is the intended behaviour.
        warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
        return classifier.fit(features, np.asarray(labels, dtype=int))


def run_baseline(
    manifest_csv: str | os.PathLike,
    status_csvs: Sequence[str | os.PathLike],
    vocabulary: Vocabulary,
    *,
    selection_metric: str = "mAP",
    with_levels: bool = True,
    n_jobs: int | None = None,
) -> dict:
    """Fit on training with each C of `C_GRID`, keep the best on validation `selection_metric`,
    tune per-label thresholds on its validation scores, score the test split.

    Returns {test_ids, test_scores, test_excluded, summary}.
    """
    levels = read_levels(status_csvs)
    splits = {split: read_split(manifest_csv, split) for split in ("training", "validation", "test")}
    statistics = {name: split_statistics(tracks, levels, with_levels) for name, tracks in splits.items()}
    (train_rows, train_x, _), (val_rows, val_x, _) = statistics["training"], statistics["validation"]
    if not len(train_rows) or not len(val_rows):
        raise ValueError(f"{manifest_csv}: no usable training or validation track for the baseline")
    train_y = splits["training"].targets[train_rows]
    validation = splits["validation"]
    val_y, val_genre_top = validation.targets[val_rows], [validation.genre_top[i] for i in val_rows]

    by_c = {}
    for c in C_GRID:
        classifier = fit_baseline(train_x, train_y, c, n_jobs)
        scores = classifier.predict_proba(val_x)
        by_c[c] = (classification_metrics(val_y, scores, vocabulary, val_genre_top), classifier, scores)
        log.info("baseline C=%g: validation %s %.4f", c, selection_metric, by_c[c][0][selection_metric])
    best_c = max(C_GRID, key=lambda c: _finite(by_c[c][0][selection_metric]))  # ties: the strongest L2
    val_metrics, classifier, val_scores = by_c[best_c]
    thresholds = tune_thresholds(val_y, val_scores)

    test_rows, test_x, test_excluded = statistics["test"]
    test = splits["test"]
    test_scores = classifier.predict_proba(test_x) if len(test_rows) else np.empty((0, len(vocabulary)))
    summary = dict(
        name=NAME,
        features=int(train_x.shape[1]),
        with_levels=with_levels,
        C=best_c,
        selection_metric=selection_metric,
        validation_by_C={str(c): _finite(m[selection_metric]) for c, (m, _, _) in by_c.items()},
        validation={k: val_metrics[k] for k in ("mAP", "top_genre_accuracy", "macro_f1")},
        label_thresholds=dict(zip(vocabulary.titles, thresholds.tolist())),
    )
    return dict(
        test_ids=test.track_ids[test_rows],
        test_scores=test_scores,
        test_excluded={**test.excluded, **test_excluded},
        summary=summary,
    )


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


def write_baseline(
    manifest_csv,
    status_csvs,
    vocabulary_tsv,
    scores_csv,
    summary_json,
    *,
    selection_metric: str,
    n_jobs: int | None = None,
) -> dict:
    """The baseline stage: test scores (score table) and the summary (C, thresholds, validation)."""
    vocabulary = Vocabulary.read(vocabulary_tsv)
    result = run_baseline(
        manifest_csv, status_csvs, vocabulary, selection_metric=selection_metric, n_jobs=n_jobs
    )
    write_scores_csv(
        scores_csv, result["test_ids"], result["test_scores"], vocabulary.columns, result["test_excluded"]
    )
    write_text(summary_json, json.dumps(result["summary"], indent=2) + "\n")
    log.info(
        "baseline: C=%g, %d test tracks scored, %d excluded",
        result["summary"]["C"],
        len(result["test_ids"]),
        len(result["test_excluded"]),
    )
    return result
