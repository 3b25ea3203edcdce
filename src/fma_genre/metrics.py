"""Test-split metrics for multi-label genre scores, the metrics document and the predictions table.

Every metric comes from scikit-learn; this module only chooses which labels and tracks enter each.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from fma_genre.atomic import atomic_path, write_text

BASELINE_NAME = "logistic regression on log-mel statistics"


def predict_top_genre(
    scores: np.ndarray, label_titles: Sequence[str], top_level_mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The best-scoring top-level label of each track: (titles, their scores)."""
    top_indices = np.flatnonzero(np.asarray(top_level_mask, dtype=bool))
    if top_indices.size == 0:
        raise ValueError("the vocabulary has no top-level genre")
    best = top_indices[np.argmax(scores[:, top_indices], axis=1)]
    return np.asarray(label_titles, dtype=object)[best], scores[np.arange(len(scores)), best]


def classification_metrics(
    y_true: np.ndarray,
    scores: np.ndarray,
    label_titles: Sequence[str],
    top_level_mask: np.ndarray,
    top_true_titles: Sequence[str],
    threshold: float = 0.5,
) -> dict:
    """Multi-label metrics over all tracks, top-genre metrics over the tracks with a `genre_top`.

    Labels without a positive test track have no defined recall, AP or AUC: they are left out of
    the macro averages (and counted), but their false positives still lower the micro F1.
    """
    y_true = np.asarray(y_true, dtype=int)
    scores = np.asarray(scores, dtype=float)
    if y_true.shape != scores.shape or y_true.shape[1] != len(label_titles):
        raise ValueError(
            f"shapes differ: y_true {y_true.shape}, scores {scores.shape}, {len(label_titles)} labels"
        )
    y_pred = (scores >= threshold).astype(int)
    n_positives = y_true.sum(axis=0)
    with_positives = np.flatnonzero(n_positives > 0)
    with_both_classes = np.flatnonzero((n_positives > 0) & (n_positives < len(y_true)))

    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, average=None, zero_division=0
    )
    per_genre = {
        title: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "average_precision": (
                float(average_precision_score(y_true[:, i], scores[:, i])) if n_positives[i] else math.nan
            ),
            "support": int(support[i]),
        }
        for i, title in enumerate(label_titles)
    }

    metrics = {
        "n_tracks": len(y_true),
        "threshold": threshold,
        "macro_f1": _macro(f1_score, y_true, y_pred, with_positives, zero_division=0),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "mAP": _macro(average_precision_score, y_true, scores, with_positives),
        "roc_auc_macro": _macro(roc_auc_score, y_true, scores, with_both_classes),
        "n_labels_without_positives": int(len(label_titles) - len(with_positives)),
        "n_labels_skipped_roc_auc": int(len(label_titles) - len(with_both_classes)),
        "per_genre": per_genre,
    }
    return metrics | _top_genre_metrics(scores, label_titles, top_level_mask, top_true_titles)


def _macro(metric, y_true: np.ndarray, y_score: np.ndarray, labels: np.ndarray, **kwargs) -> float:
    """Macro average of a scikit-learn metric over the chosen label columns (NaN if none)."""
    if labels.size == 0:
        return math.nan
    return float(metric(y_true[:, labels], y_score[:, labels], average="macro", **kwargs))


def _top_genre_metrics(
    scores: np.ndarray,
    label_titles: Sequence[str],
    top_level_mask: np.ndarray,
    top_true_titles: Sequence[str],
) -> dict:
    truth = np.asarray(["" if pd.isna(t) else str(t) for t in top_true_titles], dtype=object)
    has_truth = truth != ""
    if not has_truth.any():
        return {
            "n_tracks_top_genre": 0,
            "top_genre_accuracy": math.nan,
            "top_genre_macro_f1": math.nan,
            "confusion_matrix": {"labels": [], "matrix": []},
        }
    truth = truth[has_truth]
    predicted, _ = predict_top_genre(scores[has_truth], label_titles, top_level_mask)
    # Vocabulary order first; a true genre_top outside the vocabulary still gets its row.
    true_titles, seen = set(truth), set(truth) | set(predicted)
    top_titles = [t for t, top in zip(label_titles, top_level_mask) if top]
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


def build_metrics_document(
    model_metrics: Mapping, baseline_metrics: Mapping, data_counts: Mapping, model_info: Mapping
) -> dict:
    """The metrics.json layout: model (metrics + `model_info`), baseline, and the test data used.

    `data_counts` needs `subset`, `n_test_tracks_used`, `excluded` {track_id: reason} and `labels`;
    the counts derived from them are filled in here. `model_info` needs at least `name`.
    """
    excluded = {str(track_id): reason for track_id, reason in data_counts["excluded"].items()}
    return {
        "model": {**model_metrics, **model_info},
        "baseline": {**baseline_metrics, "name": BASELINE_NAME},
        "data": {
            **data_counts,
            "split": "test",
            "excluded": excluded,
            "n_test_tracks_excluded": len(excluded),
            "excluded_by_reason": dict(Counter(excluded.values())),
            "n_labels": len(data_counts["labels"]),
            "labels": list(data_counts["labels"]),
        },
    }


def _json_ready(value):
    """Plain JSON values: numpy scalars and arrays unwrapped, NaN and infinities as null."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_metrics_json(doc: Mapping, path: str | os.PathLike) -> None:
    write_text(path, json.dumps(_json_ready(doc), sort_keys=True, indent=2, allow_nan=False) + "\n")


def write_predictions_csv(
    path: str | os.PathLike,
    track_ids: Sequence[int],
    scores: np.ndarray,
    label_titles: Sequence[str],
    top_level_mask: np.ndarray,
    genre_top_true: Sequence[str],
) -> None:
    """One row per track: id, true and predicted top genre, the prediction's score, every label's score."""
    scores = np.asarray(scores, dtype=float)
    predicted, predicted_score = predict_top_genre(scores, label_titles, top_level_mask)
    table = pd.DataFrame(
        {
            "track_id": np.asarray(track_ids, dtype=int),
            "genre_top": ["" if pd.isna(t) else t for t in genre_top_true],
            "predicted_genre_top": predicted,
            "predicted_score": predicted_score,
        }
    )
    table = pd.concat([table, pd.DataFrame(scores, columns=list(label_titles))], axis=1)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
