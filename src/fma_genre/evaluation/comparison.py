"""The comparison stage: every experiment and seed side by side (results/experiments.csv and
.png) and results/metrics.json, the mission's target: the primary run's metrics document (its
`model`, `baseline` and `data`) plus `experiments`, every run's metrics and their spread.

Two kinds of uncertainty are kept apart: a seed's bootstrap interval (bootstrap.py) says how much
the test tracks alone move its metrics; the t-interval across seeds says how much training noise
does.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from fma_genre.evaluation.evaluate import write_metrics_json  # noqa: E402
from fma_genre.evaluation.metrics import HEADLINE_METRICS  # noqa: E402
from fma_genre.io.atomic import atomic_path  # noqa: E402

log = logging.getLogger(__name__)

PLOTTED_METRICS = ("top_genre_accuracy", "top_genre_macro_f1", "mAP", "roc_auc_macro", "macro_f1_tuned")
SEED_ROW, MEAN_ROW, BASELINE_ROW = "seed", "mean over seeds", "baseline"
DPI = 100
PANEL_COLUMNS = 3
PANEL_HEIGHT_INCHES = 3.6
SEED_OFFSET = 0.18  # how far right of its experiment's mean the seeds' dots sit
MEAN_LABEL, SEED_LABEL, BASELINE_LABEL = "mean over seeds ± t-interval", "one seed", "baseline"
LEGEND_ORDER = (MEAN_LABEL, SEED_LABEL, BASELINE_LABEL)


def compare_experiments(
    *,
    run_metrics_jsons: Sequence[str],
    runs: Sequence[Mapping],
    overrides: Mapping[str, Mapping],
    primary_predictions_csv: str,
    metrics_json: str,
    table_csv: str,
    figure_png: str,
    predictions_csv: str,
) -> dict:
    """`runs[i]` ({experiment, seed}) is the run of `run_metrics_jsons[i]`; the first is the primary."""
    documents = [json.loads(Path(path).read_text()) for path in run_metrics_jsons]
    by_experiment: dict[str, dict[int, Mapping]] = {}
    for run, document in zip(runs, documents):
        by_experiment.setdefault(run["experiment"], {})[int(run["seed"])] = document["model"]
    primary = documents[0]
    table = experiments_table(by_experiment, primary["baseline"])
    write_experiments_csv(table, table_csv)
    plot_experiments(table, figure_png)
    document = {**primary, "experiments": experiments_document(by_experiment, overrides)}
    document["model"] = {
        **primary["model"],
        "experiment": runs[0]["experiment"],
        "seed": int(runs[0]["seed"]),
    }
    write_metrics_json(document, metrics_json)
    with atomic_path(predictions_csv) as tmp:
        shutil.copyfile(primary_predictions_csv, tmp)
    for name, seeds in by_experiment.items():
        accuracy = [metrics["top_genre_accuracy"] for metrics in seeds.values()]
        log.info(
            "%s: top-genre accuracy %s over seeds %s",
            name,
            ", ".join(f"{a:.4f}" for a in accuracy),
            ", ".join(map(str, seeds)),
        )
    return document


def seed_spread(values: Sequence[float], level: float = 0.95) -> dict:
    """{"mean", "std" (sample std, ddof=1), "low", "high", "n_seeds"}: Student-t interval of the
    mean across seeds (scipy.stats.t); with one seed std/low/high are NaN. NaN values ignored."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    n_seeds = len(values)
    mean = float(values.mean()) if n_seeds else math.nan
    if n_seeds < 2:
        return {"mean": mean, "std": math.nan, "low": math.nan, "high": math.nan, "n_seeds": n_seeds}
    std = float(values.std(ddof=1))
    half_width = float(stats.t.ppf((1 + level) / 2, n_seeds - 1)) * std / math.sqrt(n_seeds)
    return {"mean": mean, "std": std, "low": mean - half_width, "high": mean + half_width, "n_seeds": n_seeds}


def experiments_table(runs: Mapping[str, Mapping[int, Mapping]], baseline: Mapping) -> pd.DataFrame:
    """The experiments side by side: seed rows, then a mean row per experiment, then the baseline.

    `runs` is {experiment: {seed: metrics with a "bootstrap" interval per metric}}, in the order
    to show; `baseline` the classical baseline's metrics on the same test tracks. Columns:
    - `experiment`; `row`: "seed", "mean over seeds" or "baseline";
    - `seed` (seed rows only); `n_seeds` (mean rows only: the seeds run; a metric undefined
      for a seed is left out of that metric's mean);
    - per HEADLINE_METRICS, `<metric>`: the seed's value, the mean over seeds or the baseline's;
      `<metric>_low`, `<metric>_high`: a seed's bootstrap interval over test tracks, or on a
      mean row the t-interval of the mean across seeds; `<metric>_std` (mean rows only): the
      sample standard deviation across seeds.
    Cells that do not apply to a row, and metrics undefined (NaN, or None from JSON), are empty.
    """
    seed_rows = [
        {"experiment": name, "row": SEED_ROW, "seed": seed}
        | {
            key: value
            for metric in HEADLINE_METRICS
            for key, value in _seed_cells(by_seed[seed], metric).items()
        }
        for name, by_seed in runs.items()
        for seed in sorted(by_seed)
    ]
    mean_rows = [_mean_row(name, by_seed) for name, by_seed in runs.items()]
    baseline_row = {"experiment": BASELINE_ROW, "row": BASELINE_ROW} | {
        m: baseline[m] for m in HEADLINE_METRICS
    }
    columns = _table_columns()
    table = pd.DataFrame(seed_rows + mean_rows + [baseline_row], columns=columns)
    # Metrics read back from metrics.json hold None for NaN: make every metric column numeric.
    return table.astype({"seed": "Int64", "n_seeds": "Int64"} | {column: float for column in columns[4:]})


def _table_columns() -> list[str]:
    suffixes = ("", "_low", "_high", "_std")
    return ["experiment", "row", "seed", "n_seeds"] + [m + s for m in HEADLINE_METRICS for s in suffixes]


def _seed_cells(metrics: Mapping, metric: str) -> dict:
    interval = metrics["bootstrap"][metric]
    return {metric: metrics[metric], f"{metric}_low": interval["low"], f"{metric}_high": interval["high"]}


def _mean_row(name: str, by_seed: Mapping[int, Mapping]) -> dict:
    row = {"experiment": name, "row": MEAN_ROW, "n_seeds": len(by_seed)}
    for metric in HEADLINE_METRICS:
        spread = seed_spread([metrics[metric] for metrics in by_seed.values()])
        row |= {metric: spread["mean"], f"{metric}_std": spread["std"]}
        row |= {f"{metric}_low": spread["low"], f"{metric}_high": spread["high"]}
    return row


def write_experiments_csv(table: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


def plot_experiments(
    table: pd.DataFrame, png_path: str | os.PathLike, metrics: Sequence[str] = PLOTTED_METRICS
) -> None:
    """One panel per metric: per experiment the mean over seeds with its t-interval (where there
    are two seeds or more), each seed's value as a dot beside it, and the baseline as a dashed line."""
    names = list(dict.fromkeys(table.loc[table["row"] == MEAN_ROW, "experiment"]))
    n_rows = math.ceil(len(metrics) / PANEL_COLUMNS)
    n_columns = min(len(metrics), PANEL_COLUMNS)
    panel_width = 2.0 + 0.5 * len(names)  # room for each experiment's rotated name
    figure, all_axes = plt.subplots(
        n_rows,
        n_columns,
        figsize=(panel_width * n_columns, PANEL_HEIGHT_INCHES * n_rows),
        layout="constrained",
        squeeze=False,
    )
    for axes, metric in zip(all_axes.flat, metrics):
        _draw_panel(axes, table, names, metric)
    for unused in all_axes.flat[len(metrics) :]:
        unused.remove()
    # One legend for all panels; a panel without a baseline value lacks that entry, so merge them.
    entries = {
        label: handle for axes in figure.axes for handle, label in zip(*axes.get_legend_handles_labels())
    }
    labels = [label for label in LEGEND_ORDER if label in entries]
    figure.legend([entries[label] for label in labels], labels, loc="outside upper center", ncols=len(labels))
    with atomic_path(png_path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
    plt.close(figure)


def _draw_panel(axes: plt.Axes, table: pd.DataFrame, names: list[str], metric: str) -> None:
    positions = np.arange(len(names))
    means = table[table["row"] == MEAN_ROW].set_index("experiment").loc[names]
    # errorbar cannot take NaN bounds: an undefined interval (one seed) is drawn as none.
    below = (means[metric] - means[f"{metric}_low"]).fillna(0).to_numpy(float)
    above = (means[f"{metric}_high"] - means[metric]).fillna(0).to_numpy(float)
    axes.errorbar(
        positions,
        means[metric].to_numpy(float),
        yerr=[below, above],
        fmt="o",
        capsize=4,
        color="tab:blue",
        label=MEAN_LABEL,
    )
    seeds = table[table["row"] == SEED_ROW]
    seed_positions = positions[[names.index(name) for name in seeds["experiment"]]] + SEED_OFFSET
    axes.plot(seed_positions, seeds[metric], ".", color="tab:gray", alpha=0.8, label=SEED_LABEL)
    baseline = table.loc[table["row"] == BASELINE_ROW, metric]
    if not baseline.empty and pd.notna(baseline.iloc[0]):
        axes.axhline(baseline.iloc[0], linestyle="--", color="tab:red", label=BASELINE_LABEL)
    axes.set_xticks(positions, names, rotation=30, ha="right")
    axes.set_xlim(-0.5, len(names) - 0.5)
    axes.set_title(metric)
    axes.grid(axis="y", alpha=0.3)


def experiments_document(runs: Mapping[str, Mapping[int, Mapping]], overrides: Mapping[str, Mapping]) -> dict:
    """The `experiments` part of metrics.json: {name: {"overrides": {...}, "seeds": {str(seed):
    metrics}, "aggregate": {metric: seed_spread(...)}}}. Every experiment needs its overrides
    (the primary one: {}), so that no set-up is recorded without what made it one."""
    return {
        name: {
            "overrides": dict(overrides[name]),
            "seeds": {str(seed): dict(by_seed[seed]) for seed in sorted(by_seed)},
            "aggregate": {
                metric: seed_spread([metrics[metric] for metrics in by_seed.values()])
                for metric in HEADLINE_METRICS
            },
        }
        for name, by_seed in runs.items()
    }
