"""Metrics of multi-label genre scores (validation during training, the test split in evaluation)
and the per-label decision thresholds tuned on validation.

Every metric comes from scikit-learn; this module only chooses which labels and tracks enter each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
)

from fma_genre.data.vocabulary import Vocabulary

DEFAULT_THRESHOLD = 0.5
# The metrics that the bootstrap intervals, the comparison and its figure report.
HEADLINE_METRICS = (
    "top_genre_accuracy",
    "top_genre_macro_f1",
    "mAP",
    "roc_auc_macro",
    "macro_f1",
    "macro_f1_tuned",
    "micro_f1",
    "micro_f1_tuned",
)


def predict_top_genre(scores: np.ndarray, vocabulary: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """The best-scoring top-level label of each track: (titles, their scores)."""
    top_indices = np.flatnonzero(vocabulary.top_level_mask)
    if top_indices.size == 0:
        raise ValueError("the vocabulary has no top-level genre")
    best = top_indices[np.argmax(scores[:, top_indices], axis=1)]
    return np.asarray(vocabulary.titles, dtype=object)[best], scores[np.arange(len(scores)), best]


def true_top_genres(top_true_titles: Sequence[str]) -> np.ndarray:
    """Each track's true `genre_top` as an object array, "" where it has none."""
    return np.asarray(["" if pd.isna(t) else str(t) for t in top_true_titles], dtype=object)


def classification_metrics(
    y_true: np.ndarray,
    scores: np.ndarray,
    vocabulary: Vocabulary,
    top_true_titles: Sequence[str],
    thresholds: np.ndarray | None = None,
) -> dict:
    """Multi-label metrics over all tracks, top-genre metrics over the tracks with a `genre_top`.

    Multi-label F1 is computed at the fixed threshold 0.5 and, when `thresholds` (one per label,
    tuned on another split) are given, at those too (`*_tuned`). Labels without a positive track
    have no defined recall, AP or AUC: they are left out of the macro averages (and counted), but
    their false positives still lower the micro F1.
    """
    y_true = np.asarray(y_true, dtype=int)
    scores = np.asarray(scores, dtype=float)
    if y_true.shape != scores.shape or y_true.shape[1] != len(vocabulary):
        raise ValueError(
            f"shapes differ: y_true {y_true.shape}, scores {scores.shape}, {len(vocabulary)} labels"
        )
    n_positives = y_true.sum(axis=0)
    with_positives = np.flatnonzero(n_positives > 0)
    with_both_classes = np.flatnonzero((n_positives > 0) & (n_positives < len(y_true)))
    fixed = _f1_metrics(y_true, scores >= DEFAULT_THRESHOLD, with_positives)
    tuned = {} if thresholds is None else _f1_metrics(y_true, scores >= thresholds, with_positives)

    per_genre = {
        title: {
            "precision": fixed["precision"][i],
            "recall": fixed["recall"][i],
            "f1": fixed["f1"][i],
            **({"threshold": float(thresholds[i]), "f1_tuned": tuned["f1"][i]} if tuned else {}),
            "average_precision": (
                float(average_precision_score(y_true[:, i], scores[:, i])) if n_positives[i] else math.nan
            ),
            "support": int(n_positives[i]),
        }
        for i, title in enumerate(vocabulary.titles)
    }
    metrics = {
        "n_tracks": len(y_true),
        "threshold": DEFAULT_THRESHOLD,
        "macro_f1": fixed["macro_f1"],
        "micro_f1": fixed["micro_f1"],
        **({"macro_f1_tuned": tuned["macro_f1"], "micro_f1_tuned": tuned["micro_f1"]} if tuned else {}),
        "mAP": _macro(average_precision_score, y_true, scores, with_positives),
        "roc_auc_macro": _macro(roc_auc_score, y_true, scores, with_both_classes),
        "n_labels_without_positives": int(len(vocabulary) - len(with_positives)),
        "n_labels_skipped_roc_auc": int(len(vocabulary) - len(with_both_classes)),
        "per_genre": per_genre,
    }
    return metrics | top_genre_metrics(scores, vocabulary, top_true_titles)


def _f1_metrics(y_true: np.ndarray, y_pred: np.ndarray, with_positives: np.ndarray) -> dict:
    y_pred = y_pred.astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    return {
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "macro_f1": _macro(f1_score, y_true, y_pred, with_positives, zero_division=0),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
    }


def tune_thresholds(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per label, the score threshold with the best F1 on these tracks (0.5 without a positive).

    Candidates are the label's own scores (scikit-learn's precision-recall curve); the chosen
    threshold is the lowest score still predicted positive at the best F1.
    """
    y_true = np.asarray(y_true, dtype=int)
    thresholds = np.full(y_true.shape[1], DEFAULT_THRESHOLD)
    for label in np.flatnonzero(y_true.sum(axis=0) > 0):
        precision, recall, candidates = precision_recall_curve(y_true[:, label], scores[:, label])
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        thresholds[label] = candidates[np.argmax(f1)]
    return thresholds


def _macro(metric, y_true: np.ndarray, y_score: np.ndarray, labels: np.ndarray, **kwargs) -> float:
    """Macro average of a scikit-learn metric over the chosen label columns (NaN if none)."""
    if labels.size == 0:
        return math.nan
    return float(metric(y_true[:, labels], y_score[:, labels], average="macro", **kwargs))


def top_genre_metrics(scores: np.ndarray, vocabulary: Vocabulary, top_true_titles: Sequence[str]) -> dict:
    """Top-genre accuracy, macro-F1 and confusion matrix over the tracks with a true `genre_top`."""
    truth = true_top_genres(top_true_titles)
    has_truth = truth != ""
    if not has_truth.any():
        return {
            "n_tracks_top_genre": 0,
            "top_genre_accuracy": math.nan,
            "top_genre_macro_f1": math.nan,
            "confusion_matrix": {"labels": [], "matrix": []},
        }
    truth = truth[has_truth]
    predicted, _ = predict_top_genre(scores[has_truth], vocabulary)
    # Vocabulary order first; a true genre_top outside the vocabulary still gets its row.
    true_titles, seen = set(truth), set(truth) | set(predicted)
    top_titles = vocabulary.top_level_titles
    matrix_labels = [t for t in top_titles if t in seen] + sorted(seen - set(top_titles))
    return {
        "n_tracks_top_genre": int(has_truth.sum()),
        "top_genre_accuracy": float(accuracy_score(truth, predicted)),
        "top_genre_macro_f1": float(
            f1_score(
                truth,
                predicted,
                labels=[t for t in matrix_labels if t in true_titles],
                average="macro",
                zero_division=0,
            )
        ),
        "confusion_matrix": {
            "labels": matrix_labels,
            "matrix": confusion_matrix(truth, predicted, labels=matrix_labels).tolist(),
        },
    }
