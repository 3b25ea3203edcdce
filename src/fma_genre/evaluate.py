"""Evaluation stage: the model and the baseline scored on the same test tracks, with
scikit-learn metrics, predictions and plots."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from fma_genre.atomic import atomic_path
from fma_genre.baseline import run_baseline
from fma_genre.labels import Genre, read_vocabulary
from fma_genre.metrics import (
    build_metrics_document,
    classification_metrics,
    write_metrics_json,
    write_predictions_csv,
)
from fma_genre.plots import plot_confusion_matrix, plot_training_curves
from fma_genre.train import SUMMARY_FILE, score_tracks

log = logging.getLogger(__name__)

SCORES_STATUS = "status"


def training_facts(model_dir) -> dict:
    """What metrics.json reports of the training run, from the model's training summary."""
    summary = json.loads((Path(model_dir) / SUMMARY_FILE).read_text())
    keys = ("best_epoch", "selection_metric", "epochs_trained", "stopped_early", "training_seconds",
            "train_clips_per_second", "device", "validation", "settings")
    return {key: summary[key] for key in keys}


def read_manifest(manifest_csv: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(
        manifest_csv, keep_default_na=False, dtype={"genre_top": str, "path": str, "status": str}
    )


def write_scores_csv(path, track_ids, scores, label_columns, excluded: dict) -> None:
    """Scores of the scored tracks (status `ok`) and the excluded ones with their reason."""
    scored = pd.DataFrame(np.asarray(scores, dtype=float), columns=label_columns)
    scored.insert(0, SCORES_STATUS, "ok")
    scored.insert(0, "track_id", np.asarray(track_ids, dtype=int))
    left_out = pd.DataFrame(
        {"track_id": list(excluded), SCORES_STATUS: list(excluded.values())}
    ).astype({"track_id": int})
    table = pd.concat([scored, left_out], ignore_index=True).sort_values("track_id")
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


def read_scores_csv(path, label_columns) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    table = pd.read_csv(path, keep_default_na=False, dtype={SCORES_STATUS: str})
    ok = table[SCORES_STATUS] == "ok"
    excluded = dict(zip(table.loc[~ok, "track_id"].astype(int), table.loc[~ok, SCORES_STATUS]))
    scored = table[ok]
    return scored["track_id"].to_numpy(int), scored[label_columns].to_numpy(float), excluded


def write_baseline_scores(manifest_csv, vocabulary_tsv, scores_csv, n_jobs: int | None = None) -> None:
    label_columns = [g.column for g in read_vocabulary(vocabulary_tsv)]
    track_ids, scores, excluded = run_baseline(read_manifest(manifest_csv), label_columns, n_jobs=n_jobs)
    write_scores_csv(scores_csv, track_ids, scores, label_columns, excluded)
    log.info("baseline: %d test tracks scored, %d excluded", len(track_ids), len(excluded))


def _restrict(track_ids: np.ndarray, scores: np.ndarray, keep: list[int]) -> np.ndarray:
    row_of = {t: i for i, t in enumerate(track_ids)}
    return scores[[row_of[t] for t in keep]]


def _metrics(scores: np.ndarray, test: pd.DataFrame, vocabulary: list[Genre]) -> dict:
    return classification_metrics(
        test[[g.column for g in vocabulary]].to_numpy(int),
        scores,
        [g.title for g in vocabulary],
        np.array([g.top_level for g in vocabulary]),
        test["genre_top"].tolist(),
    )


def evaluate(
    *,
    model_dir,
    training_log_csv,
    baseline_scores_csv,
    manifest_csv,
    vocabulary_tsv,
    metrics_json,
    predictions_csv,
    confusion_matrix_png,
    training_curves_png,
    subset: str,
    model_name: str,
    batch_size: int,
    threads: int,
) -> dict:
    """Score the test split with the model; compare it with the baseline on the same tracks."""
    vocabulary = read_vocabulary(vocabulary_tsv)
    label_columns = [g.column for g in vocabulary]
    manifest = read_manifest(manifest_csv)
    test = manifest[manifest["split"] == "test"].set_index("track_id")

    model_ids, model_scores, model_excluded = score_tracks(
        model_dir, manifest_csv, "test", batch_size=batch_size, threads=threads
    )
    baseline_ids, baseline_scores, baseline_excluded = read_scores_csv(baseline_scores_csv, label_columns)
    excluded = {**baseline_excluded, **model_excluded}
    used = sorted(set(model_ids) & set(baseline_ids))
    excluded.update(
        {t: "scored by only one of model and baseline" for t in test.index if t not in used and t not in excluded}
    )
    used_test = test.loc[used]
    model_scores = _restrict(model_ids, model_scores, used)
    model_metrics = _metrics(model_scores, used_test, vocabulary)
    baseline_metrics = _metrics(_restrict(baseline_ids, baseline_scores, used), used_test, vocabulary)

    document = build_metrics_document(
        model_metrics,
        baseline_metrics,
        {
            "subset": subset,
            "n_test_tracks_used": len(used),
            "excluded": {int(t): r for t, r in sorted(excluded.items())},
            "labels": [g.title for g in vocabulary],
        },
        {"name": model_name, **training_facts(model_dir)},
    )
    write_metrics_json(document, metrics_json)
    write_predictions_csv(
        predictions_csv,
        used,
        model_scores,
        [g.title for g in vocabulary],
        np.array([g.top_level for g in vocabulary]),
        used_test["genre_top"].tolist(),
    )
    confusion = model_metrics["confusion_matrix"]
    plot_confusion_matrix(
        np.asarray(confusion["matrix"]),
        confusion["labels"],
        confusion_matrix_png,
        f"{model_name}: top genre on the test split (accuracy {model_metrics['top_genre_accuracy']:.3f})",
    )
    plot_training_curves(training_log_csv, training_curves_png)
    log.info(
        "test: %d tracks used, %d excluded; model top-genre accuracy %.3f, baseline %.3f",
        len(used), len(excluded), model_metrics["top_genre_accuracy"], baseline_metrics["top_genre_accuracy"],
    )
    return document
