"""The comparison of experiments over seeds: the t-interval by hand, and the table, figure and
metrics.json part built from the runs' metrics."""

import json
import math

import pandas as pd
import pytest

from fma_genre.evaluation.comparison import (
    experiments_document,
    experiments_table,
    plot_experiments,
    seed_spread,
    write_experiments_csv,
)
from fma_genre.evaluation.evaluate import write_metrics_json
from fma_genre.evaluation.metrics import HEADLINE_METRICS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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
        "primary",
        "frozen backbone",
        "baseline",
    ]
    assert table["row"].tolist() == ["seed"] * 4 + ["mean over seeds"] * 2 + ["baseline"]
    assert table["seed"].tolist()[:4] == [0, 1, 0, 1]
    assert table["seed"].iloc[4:].isna().all()
    assert table["n_seeds"].iloc[:4].isna().all() and table["n_seeds"].iloc[4:6].tolist() == [2, 2]
    assert list(table.columns[:8]) == [
        "experiment",
        "row",
        "seed",
        "n_seeds",
        "top_genre_accuracy",
        "top_genre_accuracy_low",
        "top_genre_accuracy_high",
        "top_genre_accuracy_std",
    ]

    seed_row = table.iloc[0]  # primary, seed 0
    assert seed_row["mAP"] == pytest.approx(0.62)
    assert (seed_row["mAP_low"], seed_row["mAP_high"]) == pytest.approx((0.57, 0.67))
    assert math.isnan(seed_row["mAP_std"])

    mean_row = table.iloc[4]  # primary: seeds at 0.6 and 0.5 (+ 0.02 for mAP)
    half_width = 12.706204736174705 * (0.1 / math.sqrt(2)) / math.sqrt(2)  # t(0.975, 1)
    assert mean_row["mAP"] == pytest.approx(0.57)
    assert mean_row["mAP_std"] == pytest.approx(0.1 / math.sqrt(2))
    assert (mean_row["mAP_low"], mean_row["mAP_high"]) == pytest.approx(
        (0.57 - half_width, 0.57 + half_width)
    )

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
    assert math.isnan(table["top_genre_macro_f1"].iloc[0]) and math.isnan(
        table["top_genre_macro_f1_low"].iloc[0]
    )
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
    write_metrics_json(
        experiments_document({"primary": {0: RUNS["primary"][0]}}, overrides), tmp_path / "m.json"
    )
    assert json.loads((tmp_path / "m.json").read_text())["primary"]["aggregate"]["mAP"]["std"] is None
