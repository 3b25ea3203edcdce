"""Metrics against values worked out by hand, tuned thresholds, the metrics document and the
predictions table."""

import json

import numpy as np
import pandas as pd
import pytest

from fma_genre.evaluation.evaluate import build_metrics_document, write_metrics_json, write_predictions_csv
from fma_genre.evaluation.metrics import classification_metrics, tune_thresholds

from vocabularies import vocabulary_of

TITLES = ["Rock", "Electronic", "Punk", "Folk"]
TOP_LEVEL = np.array([True, True, False, True])
VOCABULARY = vocabulary_of(TITLES, TOP_LEVEL)
# Folk has no positive test track; the last track has no genre_top and no label.
Y_TRUE = np.array(
    [
        [1, 0, 1, 0],
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 0, 0],
    ]
)
SCORES = np.array(
    [
        [0.9, 0.2, 0.6, 0.1],
        [0.4, 0.3, 0.7, 0.2],
        [0.2, 0.8, 0.1, 0.3],
        [0.7, 0.6, 0.2, 0.1],
        [0.1, 0.1, 0.1, 0.1],
    ]
)
GENRE_TOP = ["Rock", "Rock", "Electronic", "Electronic", ""]


@pytest.fixture(scope="module")
def metrics():
    return classification_metrics(Y_TRUE, SCORES, VOCABULARY, GENRE_TOP)


def test_top_genre_metrics_by_hand(metrics):
    # Top-level predictions: Rock, Rock, Electronic, Rock (0.7 > 0.6): 3 of 4 right.
    assert metrics["n_tracks_top_genre"] == 4
    assert metrics["top_genre_accuracy"] == pytest.approx(0.75)
    # Rock P 2/3 R 1 → F1 0.8; Electronic P 1 R 1/2 → F1 2/3; Folk is absent, so not averaged.
    assert metrics["top_genre_macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert metrics["confusion_matrix"] == {"labels": ["Rock", "Electronic"], "matrix": [[2, 0], [1, 1]]}


def test_multi_label_metrics_by_hand(metrics):
    # At 0.5: Rock TP1 FP1 FN1 (F1 1/2), Electronic TP2 (F1 1), Punk TP1 FP1 (F1 2/3).
    assert metrics["macro_f1"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    # Micro: TP 4, FP 2, FN 1 → 2·4 / (2·4 + 2 + 1).
    assert metrics["micro_f1"] == pytest.approx(8 / 11)
    # AP: Rock ranks +,-,+ → (1 + 2/3)/2; Electronic 1; Punk ranks -,+ → 1/2.
    assert metrics["mAP"] == pytest.approx((5 / 6 + 1 + 0.5) / 3)
    # AUC: Rock wins 5 of 6 pairs, Electronic all, Punk 3 of 4.
    assert metrics["roc_auc_macro"] == pytest.approx((5 / 6 + 1 + 3 / 4) / 3)
    assert metrics["n_labels_without_positives"] == 1
    assert metrics["n_labels_skipped_roc_auc"] == 1
    assert metrics["n_tracks"] == 5


def test_per_genre_by_hand(metrics):
    assert metrics["per_genre"]["Punk"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "average_precision": 0.5, "support": 1}
    )
    assert "macro_f1_tuned" not in metrics and "threshold" not in metrics["per_genre"]["Punk"]
    folk = metrics["per_genre"]["Folk"]
    assert (folk["precision"], folk["recall"], folk["f1"], folk["support"]) == (0.0, 0.0, 0.0, 0)
    assert np.isnan(folk["average_precision"])


@pytest.mark.filterwarnings("error")
def test_no_positive_and_no_genre_top_anywhere_gives_nan_without_warnings():
    empty = classification_metrics(np.zeros((3, 4), int), SCORES[:3], VOCABULARY, ["", "", ""])
    assert empty["n_labels_without_positives"] == 4
    assert np.isnan(empty["mAP"]) and np.isnan(empty["roc_auc_macro"]) and np.isnan(empty["macro_f1"])
    assert empty["n_tracks_top_genre"] == 0
    assert np.isnan(empty["top_genre_accuracy"])
    assert empty["confusion_matrix"] == {"labels": [], "matrix": []}


def test_tuned_thresholds_maximise_f1_per_label_by_hand():
    thresholds = tune_thresholds(Y_TRUE, SCORES)
    # Rock: positives 0.9 and 0.4, negatives 0.7, 0.2, 0.1: ">= 0.4" catches both at one false
    # positive (F1 0.8), ">= 0.9" one alone (F1 2/3). Electronic: 0.8, 0.6 above every negative.
    # Punk: its positive 0.6 is below a negative's 0.7: ">= 0.6" (F1 2/3) beats ">= 0.7" (0) and
    # any lower threshold (more false positives). Folk has no positive: the default 0.5 stays.
    np.testing.assert_allclose(thresholds, [0.4, 0.6, 0.6, 0.5])
    tuned = classification_metrics(Y_TRUE, SCORES, VOCABULARY, GENRE_TOP, thresholds)
    assert tuned["macro_f1_tuned"] == pytest.approx((0.8 + 1 + 2 / 3) / 3)
    # Micro at the tuned thresholds: TP 5, FP 2 (Rock 0.7, Punk 0.7), FN 0.
    assert tuned["micro_f1_tuned"] == pytest.approx(10 / 12)
    assert tuned["per_genre"]["Rock"]["threshold"] == 0.4 and tuned["per_genre"]["Rock"]["f1_tuned"] == 0.8
    # The fixed-threshold numbers are unchanged beside them.
    assert tuned["macro_f1"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)


def test_metrics_document_layout_and_json(tmp_path, metrics):
    empty = classification_metrics(np.zeros((3, 4), int), SCORES[:3], VOCABULARY, ["", "", ""])
    doc = build_metrics_document(
        metrics,
        empty,
        {
            "subset": "small",
            "n_test_tracks_used": 5,
            "excluded": {7: "empty file", 9: "empty file", 11: "no frames"},
            "labels": TITLES,
        },
        {
            "name": "w2v-bert",
            "best_epoch": np.int64(3),
            "training_seconds": 12.5,
            "train_clips_per_second": 40.0,
        },
        {"name": "logistic regression", "C": 0.1},
    )
    write_metrics_json(doc, tmp_path / "metrics.json")
    text = (tmp_path / "metrics.json").read_text()
    assert "NaN" not in text
    read = json.loads(text)
    assert set(read) == {"model", "baseline", "data"}
    assert read["model"]["name"] == "w2v-bert"
    assert read["model"]["best_epoch"] == 3
    assert read["model"]["top_genre_accuracy"] == 0.75
    assert read["model"]["per_genre"]["Folk"]["average_precision"] is None
    assert read["baseline"]["name"] == "logistic regression" and read["baseline"]["C"] == 0.1
    assert read["baseline"]["mAP"] is None
    assert read["data"] == {
        "subset": "small",
        "split": "test",
        "n_test_tracks_used": 5,
        "n_test_tracks_excluded": 3,
        "excluded": {"7": "empty file", "9": "empty file", "11": "no frames"},
        "excluded_by_reason": {"empty file": 2, "no frames": 1},
        "n_labels": 4,
        "labels": TITLES,
    }
    assert list(read["data"]) == sorted(read["data"])


def test_predictions_csv(tmp_path):
    write_predictions_csv(tmp_path / "predictions.csv", [10, 20, 30, 40, 50], SCORES, VOCABULARY, GENRE_TOP)
    table = pd.read_csv(tmp_path / "predictions.csv", keep_default_na=False)
    assert list(table.columns) == ["track_id", "genre_top", "predicted_genre_top", "predicted_score", *TITLES]
    assert table["track_id"].tolist() == [10, 20, 30, 40, 50]
    assert table["genre_top"].tolist() == GENRE_TOP
    # Punk (0.7) beats Rock on track 20, but only top-level labels can be the top genre.
    assert table["predicted_genre_top"].tolist() == ["Rock", "Rock", "Electronic", "Rock", "Rock"]
    assert table["predicted_score"].tolist() == [0.9, 0.4, 0.8, 0.7, 0.1]
    np.testing.assert_allclose(table[TITLES].to_numpy(), SCORES)
