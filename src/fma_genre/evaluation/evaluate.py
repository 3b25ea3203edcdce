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
from pathlib import Path

import numpy as np
import pandas as pd

from fma_genre.data.vocabulary import Vocabulary
from fma_genre.evaluation.bootstrap import bootstrap_intervals
from fma_genre.evaluation.metrics import classification_metrics, predict_top_genre, true_top_genres
from fma_genre.features.splits import read_manifest
from fma_genre.io.atomic import atomic_path, write_text
from fma_genre.models.saved_model import read_label_thresholds, read_training_summary
from fma_genre.scoring.tables import common_tracks, read_scores_csv, rows_for

log = logging.getLogger(__name__)

BOOTSTRAP_RESAMPLES = 1000  # of the test tracks, seeded: the same scores give the same intervals
TRAINING_FACTS = (
    "best_epoch",
    "selection_metric",
    "epochs_trained",
    "stopped_early",
    "training_seconds",
    "train_clips_per_second",
    "device",
    "validation",
    "settings",
    "base_model_source",
)


def build_metrics_document(
    model_metrics: Mapping,
    baseline_metrics: Mapping,
    data_counts: Mapping,
    model_info: Mapping,
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
    vocabulary: Vocabulary,
    genre_top_true: Sequence[str],
) -> None:
    """One row per track: id, true and predicted top genre, the prediction's score, every label's score."""
    scores = np.asarray(scores, dtype=float)
    predicted, predicted_score = predict_top_genre(scores, vocabulary)
    table = pd.DataFrame(
        {
            "track_id": np.asarray(track_ids, dtype=int),
            "genre_top": true_top_genres(genre_top_true),
            "predicted_genre_top": predicted,
            "predicted_score": predicted_score,
        }
    )
    table = pd.concat([table, pd.DataFrame(scores, columns=vocabulary.titles)], axis=1)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")


def _metrics(
    scores: np.ndarray, test: pd.DataFrame, vocabulary: Vocabulary, thresholds, bootstrap: bool = False
) -> dict:
    """The metrics of `scores` on the `test` tracks; `bootstrap`: with 95% intervals over them."""
    inputs = (
        test[vocabulary.columns].to_numpy(int),
        scores,
        vocabulary,
        test["genre_top"].tolist(),
        np.asarray(thresholds),
    )
    metrics = classification_metrics(*inputs)
    if bootstrap:
        metrics["bootstrap"] = bootstrap_intervals(*inputs, resamples=BOOTSTRAP_RESAMPLES, seed=0)
    return metrics


def tracks_both_scored(test_ids, model_table, baseline_table) -> tuple[list[int], dict[int, str]]:
    """The test tracks that the model and the baseline both scored (`read_scores_csv` tables),
    and why each other test track is left out."""
    (model_ids, _, model_excluded), (baseline_ids, _, baseline_excluded) = model_table, baseline_table
    excluded = {**baseline_excluded, **model_excluded}
    used = common_tracks(model_ids, baseline_ids)
    accounted_for = set(used) | set(excluded)
    excluded |= {t: "scored by only one of model and baseline" for t in test_ids if t not in accounted_for}
    return used, {int(t): reason for t, reason in sorted(excluded.items())}


def model_facts(model_dir) -> dict:
    """What metrics.json says of the trained model: its name and how it was trained."""
    summary = read_training_summary(model_dir)
    return {"name": summary["base_model_source"]["model_id"], **{k: summary[k] for k in TRAINING_FACTS}}


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
    vocabulary = Vocabulary.read(vocabulary_tsv)
    manifest = read_manifest(manifest_csv)
    test = manifest[manifest["split"] == "test"].set_index("track_id")
    model_table = read_scores_csv(test_scores_csv, vocabulary.columns)
    baseline_table = read_scores_csv(baseline_scores_csv, vocabulary.columns)
    used, excluded = tracks_both_scored(test.index, model_table, baseline_table)
    used_test = test.loc[used]
    model_scores = rows_for(*model_table[:2], used)
    baseline_summary = json.loads(Path(baseline_summary_json).read_text())
    model_thresholds = read_label_thresholds(model_dir, vocabulary.titles)
    model_metrics = _metrics(model_scores, used_test, vocabulary, model_thresholds, bootstrap=True)
    baseline_thresholds = [baseline_summary["label_thresholds"][title] for title in vocabulary.titles]
    baseline_metrics = _metrics(
        rows_for(*baseline_table[:2], used), used_test, vocabulary, baseline_thresholds
    )

    document = build_metrics_document(
        model_metrics,
        baseline_metrics,
        {
            "subset": subset,
            "n_test_tracks_used": len(used),
            "excluded": excluded,
            "labels": vocabulary.titles,
        },
        model_facts(model_dir),
        {k: v for k, v in baseline_summary.items() if k != "label_thresholds"},
    )
    write_metrics_json(document, metrics_json)
    write_predictions_csv(predictions_csv, used, model_scores, vocabulary, used_test["genre_top"].tolist())
    log.info(
        "test: %d tracks used, %d excluded; model top-genre accuracy %.3f, baseline %.3f",
        len(used),
        len(excluded),
        model_metrics["top_genre_accuracy"],
        baseline_metrics["top_genre_accuracy"],
    )
    return document
