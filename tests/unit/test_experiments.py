"""Experiments over seeds: the bootstrap's metrics against classification_metrics, the intervals'
behaviour, the t-interval by hand, and the table, figure and metrics.json part built from them."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from fma_genre.evaluate import write_metrics_json
from fma_genre.experiments import (
    HEADLINE_METRICS,
    _headline_metrics,
    _prepare,
    bootstrap_intervals,
    experiments_document,
    experiments_table,
    plot_experiments,
    seed_spread,
    write_experiments_csv,
)
from fma_genre.metrics import classification_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
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
        "label_titles": titles,
        "top_level_mask": top_level,
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


def test_seed_spread_by_hand():
    spread = seed_spread([0.8, 0.9, math.nan, 1.0])  # the NaN (a seed without the metric) is ignored
    half_width = 4.302652729749464 * 0.1 / math.sqrt(3)  # t(0.975, 2 degrees of freedom) from tables
    assert spread["n_seeds"] == 3
    assert spread["mean"] == pytest.approx(0.9)
    assert spread["std"] == pytest.approx(0.1)
    assert half_width == pytest.approx(0.2484, abs=1e-4)
    assert spread["low"] == pytest.approx(0.9 - half_width)
    assert spread["high"] == pytest.approx(0.9 + half_width)


def test_seed_spread_of_one_seed_has_no_spread():
    spread = seed_spread([0.7])
    assert spread["mean"] == 0.7 and spread["n_seeds"] == 1
    assert all(math.isnan(spread[key]) for key in ("std", "low", "high"))


def seed_metrics(offset: float) -> dict:
    """Per-seed metrics: metric i is offset + i / 100, its bootstrap interval ± 0.05."""
    values = {metric: offset + i / 100 for i, metric in enumerate(HEADLINE_METRICS)}
    bootstrap = {metric: {"low": value - 0.05, "high": value + 0.05} for metric, value in values.items()}
    return values | {"bootstrap": bootstrap}


RUNS = {
    "primary": {1: seed_metrics(0.5), 0: seed_metrics(0.6)},
    "frozen backbone": {0: seed_metrics(0.3), 1: seed_metrics(0.4)},
}
BASELINE = {metric: 0.2 for metric in HEADLINE_METRICS}


def test_experiments_table_rows_and_values():
    table = experiments_table(RUNS, BASELINE)
    assert table["experiment"].tolist() == ["primary"] * 2 + ["frozen backbone"] * 2 + [
        "primary", "frozen backbone", "baseline"
    ]
    assert table["row"].tolist() == ["seed"] * 4 + ["mean over seeds"] * 2 + ["baseline"]
    assert table["seed"].tolist()[:4] == [0, 1, 0, 1]
    assert table["seed"].iloc[4:].isna().all()
    assert table["n_seeds"].iloc[:4].isna().all() and table["n_seeds"].iloc[4:6].tolist() == [2, 2]
    assert list(table.columns[:8]) == ["experiment", "row", "seed", "n_seeds", "top_genre_accuracy",
                                       "top_genre_accuracy_low", "top_genre_accuracy_high", "top_genre_accuracy_std"]

    seed_row = table.iloc[0]  # primary, seed 0
    assert seed_row["mAP"] == pytest.approx(0.62)
    assert (seed_row["mAP_low"], seed_row["mAP_high"]) == pytest.approx((0.57, 0.67))
    assert math.isnan(seed_row["mAP_std"])

    mean_row = table.iloc[4]  # primary: seeds at 0.6 and 0.5 (+ 0.02 for mAP)
    half_width = 12.706204736174705 * (0.1 / math.sqrt(2)) / math.sqrt(2)  # t(0.975, 1)
    assert mean_row["mAP"] == pytest.approx(0.57)
    assert mean_row["mAP_std"] == pytest.approx(0.1 / math.sqrt(2))
    assert (mean_row["mAP_low"], mean_row["mAP_high"]) == pytest.approx((0.57 - half_width, 0.57 + half_width))

    baseline_row = table.iloc[-1]
    assert baseline_row[list(HEADLINE_METRICS)].tolist() == [0.2] * len(HEADLINE_METRICS)
    assert pd.isna(baseline_row["mAP_low"]) and pd.isna(baseline_row["seed"])


def test_experiments_table_of_metrics_read_back_from_json(tmp_path):
    # metrics.json stores an undefined metric as null: it must come back as NaN, not break the mean.
    undefined = seed_metrics(0.5) | {"top_genre_macro_f1": None}
    undefined["bootstrap"]["top_genre_macro_f1"] = {"low": None, "high": None}
    runs = json.loads(json.dumps({"primary": {0: undefined, 1: seed_metrics(0.7)}}))
    runs = {name: {int(seed): metrics for seed, metrics in by_seed.items()} for name, by_seed in runs.items()}
    table = experiments_table(runs, BASELINE)
    assert table["top_genre_macro_f1"].dtype == float
    assert math.isnan(table["top_genre_macro_f1"].iloc[0]) and math.isnan(table["top_genre_macro_f1_low"].iloc[0])
    assert table["top_genre_macro_f1"].iloc[2] == pytest.approx(0.71)  # the mean of the seed that has it
    plot_experiments(table, tmp_path / "experiments.png")
    assert (tmp_path / "experiments.png").read_bytes()[:8] == PNG_MAGIC


def test_experiments_csv(tmp_path):
    write_experiments_csv(experiments_table(RUNS, BASELINE), tmp_path / "experiments.csv")
    lines = (tmp_path / "experiments.csv").read_text().splitlines()
    assert lines[0].startswith("experiment,row,seed,n_seeds,top_genre_accuracy,top_genre_accuracy_low,")
    assert lines[1].startswith("primary,seed,0,,0.6,0.55,0.65,,0.61,")  # ints as ints, empty cells empty
    assert lines[-1].startswith("baseline,baseline,,,0.2,,,,0.2,")
    assert [p.name for p in tmp_path.iterdir()] == ["experiments.csv"]  # no temporary left


def test_plot_experiments_writes_a_png(tmp_path):
    plot_experiments(experiments_table(RUNS, BASELINE), tmp_path / "experiments.png")
    one_seed = {name: {0: by_seed[0]} for name, by_seed in RUNS.items()}
    plot_experiments(experiments_table(one_seed, BASELINE), tmp_path / "one_seed.png", metrics=["mAP"])
    for name in ("experiments.png", "one_seed.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiments.png", "one_seed.png"]


def test_experiments_document_layout(tmp_path):
    overrides = {"primary": {}, "frozen backbone": {"freeze_backbone": True}}
    document = experiments_document(RUNS, overrides)
    assert list(document) == ["primary", "frozen backbone"]
    frozen = document["frozen backbone"]
    assert set(frozen) == {"overrides", "seeds", "aggregate"}
    assert frozen["overrides"] == {"freeze_backbone": True}
    assert list(frozen["seeds"]) == ["0", "1"] and frozen["seeds"]["1"] == RUNS["frozen backbone"][1]
    assert set(frozen["aggregate"]) == set(HEADLINE_METRICS)
    assert frozen["aggregate"]["mAP"] == pytest.approx(seed_spread([0.32, 0.42]))
    with pytest.raises(KeyError):
        experiments_document(RUNS, {"primary": {}})  # every experiment must say what it changes

    # One seed: the undefined spread goes into metrics.json as null.
    write_metrics_json(experiments_document({"primary": {0: RUNS["primary"][0]}}, overrides), tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text())["primary"]["aggregate"]["mAP"]["std"] is None
