"""Bootstrap intervals: the bootstrap's lean metrics against classification_metrics, and the
intervals' behaviour."""

import math

import numpy as np
import pytest

from fma_genre.evaluation.bootstrap import _headline_metrics, _prepare, bootstrap_intervals
from fma_genre.evaluation.metrics import HEADLINE_METRICS, classification_metrics

from vocabularies import vocabulary_of

N_TOP_LEVEL = 4


def synthetic_test_set(n_tracks: int, n_labels: int = 10, seed: int = 0) -> dict:
    """Scores that lean towards the true labels, rounded so that many tie; the last label has no
    positive; a tenth of the tracks has no genre_top ("" or NaN), the rest one top-level label,
    never the last top-level one (predicted at times, so left out of the top-genre macro-F1)."""
    rng = np.random.default_rng(seed)
    titles = [f"genre {i}" for i in range(n_labels)]
    top_level = np.arange(n_labels) < N_TOP_LEVEL
    y_true = (rng.random((n_tracks, n_labels)) < 0.15).astype(int)
    y_true[:, :N_TOP_LEVEL] = 0
    top = rng.integers(0, N_TOP_LEVEL - 1, n_tracks)
    y_true[np.arange(n_tracks), top] = 1
    without_top = rng.random(n_tracks) < 0.1
    y_true[without_top, :N_TOP_LEVEL] = 0
    y_true[:, -1] = 0
    genre_top = [
        (math.nan if i % 2 else "") if missing else titles[t]
        for i, (t, missing) in enumerate(zip(top, without_top))
    ]
    scores = np.round(np.clip(0.4 * y_true + 0.6 * rng.random(y_true.shape), 0, 1), 2)
    return {
        "y_true": y_true,
        "scores": scores,
        "vocabulary": vocabulary_of(titles, top_level),
        "top_true_titles": genre_top,
        "thresholds": rng.uniform(0.3, 0.7, n_labels),
    }


def assert_same_metrics(lean: dict, reference: dict) -> None:
    for metric in HEADLINE_METRICS:
        assert lean[metric] == pytest.approx(reference[metric], abs=1e-12), metric


def test_lean_metrics_equal_classification_metrics_on_the_full_data():
    case = synthetic_test_set(120)
    assert case["y_true"][:, -1].sum() == 0 and "" in case["top_true_titles"]
    assert any(isinstance(t, float) for t in case["top_true_titles"])  # NaN genre_top too
    reference = classification_metrics(**case)
    assert "genre 3" in reference["confusion_matrix"]["labels"]  # predicted, never true
    lean = _headline_metrics(_prepare(**case), np.ones(120, dtype=int))
    assert reference["n_labels_without_positives"] == 2  # genre 3 and the last label
    assert set(lean) == set(HEADLINE_METRICS)
    assert_same_metrics(lean, reference)


def test_lean_metrics_equal_classification_metrics_on_a_resample():
    # Tracks drawn several times and tracks not drawn at all, as in a bootstrap resample.
    case = synthetic_test_set(60, seed=1)
    rows = np.random.default_rng(7).integers(0, 60, 60)
    resampled = case | {
        "y_true": case["y_true"][rows],
        "scores": case["scores"][rows],
        "top_true_titles": [case["top_true_titles"][r] for r in rows],
    }
    lean = _headline_metrics(_prepare(**case), np.bincount(rows, minlength=60))
    assert_same_metrics(lean, classification_metrics(**resampled))


def test_bootstrap_intervals_contain_the_full_data_value_and_follow_the_seed():
    case = synthetic_test_set(400)
    full = classification_metrics(**case)
    intervals = bootstrap_intervals(**case, resamples=300, seed=3)
    assert set(intervals) == set(HEADLINE_METRICS)
    for metric, interval in intervals.items():
        assert interval["low"] < full[metric] < interval["high"], metric
    assert bootstrap_intervals(**case, resamples=300, seed=3) == intervals
    assert bootstrap_intervals(**case, resamples=300, seed=4) != intervals


def test_bootstrap_interval_narrows_with_more_tracks():
    def widths(n_tracks: int) -> dict:
        intervals = bootstrap_intervals(**synthetic_test_set(n_tracks), resamples=300)
        return {metric: i["high"] - i["low"] for metric, i in intervals.items()}

    few, many = widths(100), widths(1600)
    for metric in HEADLINE_METRICS:
        assert many[metric] < 0.6 * few[metric], metric  # 1/sqrt(16) expected


def test_a_metric_undefined_in_every_resample_has_no_interval():
    case = synthetic_test_set(50) | {"top_true_titles": [""] * 50}
    intervals = bootstrap_intervals(**case, resamples=50)
    assert math.isnan(intervals["top_genre_accuracy"]["low"])
    assert math.isnan(intervals["top_genre_macro_f1"]["high"])
    assert intervals["mAP"]["low"] < intervals["mAP"]["high"]
