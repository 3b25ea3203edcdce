"""Evaluation stage of one experiment and seed: its test scores and the baseline's compared on the
same tracks, with scikit-learn metrics and bootstrap intervals over the test tracks, into its
`metrics.json` and a predictions table. It reads score tables and the
model's JSON files only: the model itself is never loaded here (scoring is the `score` rule's).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from fma_genre.atomic import atomic_path, write_text
from fma_genre.experiments import bootstrap_intervals
from fma_genre.labels import Genre, read_vocabulary
from fma_genre.metrics import classification_metrics, predict_top_genre
from fma_genre.saved_model import read_label_thresholds, read_training_summary
from fma_genre.scores import common_tracks, read_scores_csv, rows_for
from fma_genre.tracks import read_manifest

log = logging.getLogger(__name__)

BOOTSTRAP_RESAMPLES = 1000  # of the test tracks, seeded: the same scores give the same intervals
TRAINING_FACTS = (
    "best_epoch", "selection_metric", "epochs_trained", "stopped_early", "training_seconds",
    "train_clips_per_second", "device", "validation", "settings", "base_model_source",
)


def build_metrics_document(
    model_metrics: Mapping, baseline_metrics: Mapping, data_counts: Mapping, model_info: Mapping,
    baseline_info: Mapping,
) -> dict:
    """The metrics.json layout: model (metrics + `model_info`), baseline (+ `baseline_info`), data.

    `data_counts` needs `subset`, `n_test_tracks_used`, `excluded` {track_id: reason} and `labels`;
    the counts derived from them are filled in here. Both infos need at least `name`.
    """
    excluded = {str(track_id): reason for track_id, reason in data_counts["excluded"].items()}
    return {
        "model": {**model_metrics, **model_info},
        "baseline": {**baseline_metrics, **baseline_info},
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


def _metrics(
    scores: np.ndarray, test: pd.DataFrame, vocabulary: list[Genre], thresholds, bootstrap: bool = False
) -> dict:
    """The metrics of `scores` on the `test` tracks; `bootstrap`: with 95% intervals over them."""
    inputs = (
        test[[g.column for g in vocabulary]].to_numpy(int),
        scores,
        [g.title for g in vocabulary],
        np.array([g.top_level for g in vocabulary]),
        test["genre_top"].tolist(),
        np.asarray(thresholds),
    )
    metrics = classification_metrics(*inputs)
    if bootstrap:
        metrics["bootstrap"] = bootstrap_intervals(*inputs, resamples=BOOTSTRAP_RESAMPLES, seed=0)
    return metrics


def evaluate(
    *,
    model_dir,
    test_scores_csv,
    baseline_scores_csv,
    baseline_summary_json,
    manifest_csv,
    vocabulary_tsv,
    metrics_json,
    predictions_csv,
    subset: str,
) -> dict:
    """Metrics of the model's and the baseline's test scores on the tracks both scored."""
    vocabulary = read_vocabulary(vocabulary_tsv)
    label_columns, label_titles = [g.column for g in vocabulary], [g.title for g in vocabulary]
    manifest = read_manifest(manifest_csv)
    test = manifest[manifest["split"] == "test"].set_index("track_id")

    model_ids, model_scores, model_excluded = read_scores_csv(test_scores_csv, label_columns)
    baseline_ids, baseline_scores, baseline_excluded = read_scores_csv(baseline_scores_csv, label_columns)
    excluded = {**baseline_excluded, **model_excluded}
    used = common_tracks(model_ids, baseline_ids)
    accounted_for = set(used) | set(excluded)
    excluded.update(
        {t: "scored by only one of model and baseline" for t in test.index if t not in accounted_for}
    )
    used_test = test.loc[used]
    model_scores = rows_for(model_ids, model_scores, used)
    baseline_summary = json.loads(open(baseline_summary_json).read())
    model_metrics = _metrics(
        model_scores, used_test, vocabulary, read_label_thresholds(model_dir, label_titles), bootstrap=True
    )
    baseline_metrics = _metrics(
        rows_for(baseline_ids, baseline_scores, used), used_test, vocabulary,
        [baseline_summary["label_thresholds"][title] for title in label_titles],
    )

    summary = read_training_summary(model_dir)
    document = build_metrics_document(
        model_metrics,
        baseline_metrics,
        {
            "subset": subset,
            "n_test_tracks_used": len(used),
            "excluded": {int(t): r for t, r in sorted(excluded.items())},
            "labels": label_titles,
        },
        {"name": summary["base_model_source"]["model_id"], **{k: summary[k] for k in TRAINING_FACTS}},
        {k: v for k, v in baseline_summary.items() if k != "label_thresholds"},
    )
    write_metrics_json(document, metrics_json)
    write_predictions_csv(
        predictions_csv,
        used,
        model_scores,
        label_titles,
        np.array([g.top_level for g in vocabulary]),
        used_test["genre_top"].tolist(),
    )
    log.info(
        "test: %d tracks used, %d excluded; model top-genre accuracy %.3f, baseline %.3f",
        len(used), len(excluded), model_metrics["top_genre_accuracy"], baseline_metrics["top_genre_accuracy"],
    )
    return document
