"""Training set-ups ("experiments") compared over seeds: bootstrap intervals of one run's test
metrics, the spread of a metric across seeds, and the comparison as a table, a figure and the
`experiments` part of metrics.json. The metrics are metrics.classification_metrics' headline ones.

Two kinds of uncertainty are kept apart: a seed's bootstrap interval says how much the test
tracks alone move its metrics; the t-interval across seeds says how much training noise does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # files only: no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from fma_genre.atomic import atomic_path  # noqa: E402
from fma_genre.metrics import DEFAULT_THRESHOLD, predict_top_genre  # noqa: E402

HEADLINE_METRICS = (
    "top_genre_accuracy", "top_genre_macro_f1", "mAP", "roc_auc_macro",
    "macro_f1", "macro_f1_tuned", "micro_f1", "micro_f1_tuned",
)
PLOTTED_METRICS = ("top_genre_accuracy", "top_genre_macro_f1", "mAP", "roc_auc_macro", "macro_f1_tuned")
SEED_ROW, MEAN_ROW, BASELINE_ROW = "seed", "mean over seeds", "baseline"
NO_TOP_GENRE = -1  # top-genre code of a track without a true genre_top

DPI = 100
PANEL_COLUMNS = 3
PANEL_HEIGHT_INCHES = 3.6
SEED_OFFSET = 0.18  # how far right of its experiment's mean the seeds' dots sit
MEAN_LABEL, SEED_LABEL, BASELINE_LABEL = "mean over seeds ± t-interval", "one seed", "baseline"
LEGEND_ORDER = (MEAN_LABEL, SEED_LABEL, BASELINE_LABEL)


def bootstrap_intervals(
    y_true: np.ndarray,
    scores: np.ndarray,
    label_titles: Sequence[str],
    top_level_mask: np.ndarray,
    top_true_titles: Sequence[str],
    thresholds: np.ndarray,
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """{metric: {"low": float, "high": float}} for every HEADLINE_METRICS: percentile bootstrap
    over test tracks (resampling tracks with replacement, `resamples` times, numpy Generator seeded by `seed`).

    A metric undefined in a resample (NaN, e.g. no track with a genre_top drawn) is left out of
    its percentiles; a metric undefined in every resample gets NaN bounds.
    """
    tracks = _prepare(y_true, scores, label_titles, top_level_mask, top_true_titles, thresholds)
    n_tracks = len(tracks.true_top)
    rng = np.random.default_rng(seed)
    draws = np.empty((resamples, len(HEADLINE_METRICS)))
    for resample in range(resamples):
        # A resample is how often each track was drawn: every metric is then a weighted count.
        times_drawn = np.bincount(rng.integers(0, n_tracks, n_tracks), minlength=n_tracks)
        draws[resample] = list(_headline_metrics(tracks, times_drawn).values())
    tail = 100 * (1 - level) / 2
    return {
        metric: _percentile_interval(draws[:, column], tail, 100 - tail)
        for column, metric in enumerate(HEADLINE_METRICS)
    }


def _percentile_interval(values: np.ndarray, low: float, high: float) -> dict:
    if np.isnan(values).all():  # nanpercentile would warn before returning NaN
        return {"low": math.nan, "high": math.nan}
    return {"low": float(np.nanpercentile(values, low)), "high": float(np.nanpercentile(values, high))}


@dataclass(frozen=True)
class _Tracks:
    """The test tracks as every resample reuses them; arrays are (tracks, labels) unless noted.

    `labels` is y_true. `order` sorts each label's scores in descending order; in that order,
    `positives` is the label's y_true and `tie_start`/`tie_end` the first and last position of
    each position's group of tied scores. `outcomes` holds, per metric suffix ("" at 0.5,
    "_tuned"), [true positives | false positives | false negatives] side by side (tracks, 3 x
    labels). Top genres are integer codes, one per track (NO_TOP_GENRE: no true genre_top).
    """

    labels: np.ndarray
    order: np.ndarray
    positives: np.ndarray
    tie_start: np.ndarray
    tie_end: np.ndarray
    outcomes: dict[str, np.ndarray]
    true_top: np.ndarray
    predicted_top: np.ndarray
    n_top_codes: int


def _prepare(
    y_true: np.ndarray,
    scores: np.ndarray,
    label_titles: Sequence[str],
    top_level_mask: np.ndarray,
    top_true_titles: Sequence[str],
    thresholds: np.ndarray,
) -> _Tracks:
    """Sort, threshold and predict once: none of it depends on which tracks a resample draws."""
    y_true = np.asarray(y_true, dtype=int)
    scores = np.asarray(scores, dtype=float)
    if y_true.shape != scores.shape or y_true.shape[1] != len(label_titles) or len(top_true_titles) != len(y_true):
        raise ValueError(
            f"shapes differ: y_true {y_true.shape}, scores {scores.shape}, {len(label_titles)} labels, "
            f"{len(top_true_titles)} top genres"
        )
    order = np.argsort(-scores, axis=0, kind="stable")
    truth = np.asarray(["" if pd.isna(t) else str(t) for t in top_true_titles], dtype=object)
    predicted, _ = predict_top_genre(scores, label_titles, top_level_mask)
    codes, titles = pd.factorize(np.concatenate([truth, predicted]))  # one code per title for both
    return _Tracks(
        labels=y_true.astype(float),
        order=order,
        positives=np.take_along_axis(y_true, order, axis=0),
        **_tie_groups(np.take_along_axis(scores, order, axis=0)),
        outcomes={
            "": _outcomes(y_true, scores >= DEFAULT_THRESHOLD),
            "_tuned": _outcomes(y_true, scores >= np.asarray(thresholds, dtype=float)),
        },
        true_top=np.where(truth == "", NO_TOP_GENRE, codes[: len(truth)]),
        predicted_top=codes[len(truth):],
        n_top_codes=len(titles),
    )


def _tie_groups(sorted_scores: np.ndarray) -> dict[str, np.ndarray]:
    """Per position of descending scores, the first and last position holding the same score."""
    positions = np.arange(len(sorted_scores))[:, None]
    ties_previous = np.vstack([np.zeros((1, sorted_scores.shape[1]), bool), sorted_scores[1:] == sorted_scores[:-1]])
    ties_next = np.vstack([ties_previous[1:], np.zeros((1, sorted_scores.shape[1]), bool)])
    tie_start = np.maximum.accumulate(np.where(ties_previous, 0, positions), axis=0)
    tie_end = np.minimum.accumulate(np.where(ties_next, len(sorted_scores), positions)[::-1], axis=0)[::-1]
    return {"tie_start": tie_start, "tie_end": tie_end}


def _outcomes(y_true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    truth = y_true.astype(bool)
    return np.hstack([truth & predicted, ~truth & predicted, truth & ~predicted]).astype(float)


def _headline_metrics(tracks: _Tracks, weights: np.ndarray) -> dict[str, float]:
    """The HEADLINE_METRICS of the tracks drawn `weights` times each (1s: the test set itself).

    Definitions are metrics.classification_metrics' (scikit-learn's), on the resampled tracks;
    tests/unit/test_experiments.py checks the two agree. Scikit-learn itself is not called: its
    per-call overhead, once per label for AP and ROC-AUC, made 1000 resamples take minutes.
    """
    metrics = _top_genre_metrics(tracks, weights) | _ranking_metrics(tracks, weights)
    with_positives = weights @ tracks.labels > 0
    for suffix, outcomes in tracks.outcomes.items():
        metrics |= _f1_metrics(weights @ outcomes, with_positives, suffix)
    return {metric: metrics[metric] for metric in HEADLINE_METRICS}


def _ranking_metrics(tracks: _Tracks, weights: np.ndarray) -> dict[str, float]:
    """mAP and macro ROC-AUC, each over the labels where it is defined in this resample.

    Tracks tied on a label's score form one threshold, as in scikit-learn's curves: a positive
    counts the precision at the end of its tie group (AP); a negative counts the positives
    scored above it plus half of those tied with it (ROC-AUC, the trapezoid area).
    """
    drawn = weights[tracks.order].astype(float)
    positive = drawn * tracks.positives
    negative = drawn - positive
    true_positives, false_positives = np.cumsum(positive, axis=0), np.cumsum(negative, axis=0)
    at_tie_end = np.take_along_axis(true_positives, tracks.tie_end, axis=0)
    predicted_at_tie_end = at_tie_end + np.take_along_axis(false_positives, tracks.tie_end, axis=0)
    above_tie = np.take_along_axis(true_positives - positive, tracks.tie_start, axis=0)
    n_positives, n_negatives = positive.sum(axis=0), negative.sum(axis=0)
    precision_sums = (positive * _ratio(at_tie_end, predicted_at_tie_end)).sum(axis=0)
    pairs_won = (negative * (above_tie + at_tie_end) / 2).sum(axis=0)
    with_positives, with_both = n_positives > 0, (n_positives > 0) & (n_negatives > 0)
    return {
        "mAP": _mean(_ratio(precision_sums, n_positives)[with_positives]),
        "roc_auc_macro": _mean(_ratio(pairs_won, n_positives * n_negatives)[with_both]),
    }


def _f1_metrics(counts: np.ndarray, with_positives: np.ndarray, suffix: str) -> dict[str, float]:
    """Macro F1 over the labels with a positive and micro F1 over all, from weighted
    [true positives | false positives | false negatives]; zero_division=0 as in metrics.py."""
    true_positives, false_positives, false_negatives = np.split(counts, 3)
    f1 = _ratio(2 * true_positives, 2 * true_positives + false_positives + false_negatives)
    micro = _ratio(2 * true_positives.sum(), 2 * true_positives.sum() + false_positives.sum() + false_negatives.sum())
    return {f"macro_f1{suffix}": _mean(f1[with_positives]), f"micro_f1{suffix}": float(micro)}


def _top_genre_metrics(tracks: _Tracks, weights: np.ndarray) -> dict[str, float]:
    """Top-genre accuracy and macro F1 over the drawn tracks with a true genre_top, the F1
    averaged over the true genres drawn (metrics.top_genre_metrics)."""
    has_truth = tracks.true_top != NO_TOP_GENRE
    true_top, predicted_top, weights = tracks.true_top[has_truth], tracks.predicted_top[has_truth], weights[has_truth]
    if weights.sum() == 0:
        return {"top_genre_accuracy": math.nan, "top_genre_macro_f1": math.nan}
    correct = true_top == predicted_top
    true_counts = np.bincount(true_top, weights, minlength=tracks.n_top_codes)
    predicted_counts = np.bincount(predicted_top, weights, minlength=tracks.n_top_codes)
    hits = np.bincount(true_top[correct], weights[correct], minlength=tracks.n_top_codes)
    f1 = _ratio(2 * hits, true_counts + predicted_counts)  # 2·TP / (2·TP + FP + FN)
    return {
        "top_genre_accuracy": float(hits.sum() / weights.sum()),
        "top_genre_macro_f1": _mean(f1[true_counts > 0]),
    }


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    quotient = np.zeros(np.broadcast(numerator, denominator).shape)
    return np.divide(numerator, denominator, out=quotient, where=denominator != 0)


def _mean(values: np.ndarray) -> float:
    """The macro average; NaN when no label qualifies, as metrics._macro."""
    return float(values.mean()) if values.size else math.nan


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
        | {key: value for metric in HEADLINE_METRICS for key, value in _seed_cells(by_seed[seed], metric).items()}
        for name, by_seed in runs.items()
        for seed in sorted(by_seed)
    ]
    mean_rows = [_mean_row(name, by_seed) for name, by_seed in runs.items()]
    baseline_row = {"experiment": BASELINE_ROW, "row": BASELINE_ROW} | {m: baseline[m] for m in HEADLINE_METRICS}
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
        n_rows, n_columns, figsize=(panel_width * n_columns, PANEL_HEIGHT_INCHES * n_rows),
        layout="constrained", squeeze=False,
    )
    for axes, metric in zip(all_axes.flat, metrics):
        _draw_panel(axes, table, names, metric)
    for unused in all_axes.flat[len(metrics):]:
        unused.remove()
    # One legend for all panels; a panel without a baseline value lacks that entry, so merge them.
    entries = {label: handle for axes in figure.axes for handle, label in zip(*axes.get_legend_handles_labels())}
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
        positions, means[metric].to_numpy(float), yerr=[below, above], fmt="o", capsize=4,
        color="tab:blue", label=MEAN_LABEL,
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


def experiments_document(
    runs: Mapping[str, Mapping[int, Mapping]], overrides: Mapping[str, Mapping]
) -> dict:
    """The `experiments` part of metrics.json: {name: {"overrides": {...}, "seeds": {str(seed):
    metrics}, "aggregate": {metric: seed_spread(...)}}}. Every experiment needs its overrides
    (the primary one: {}), so that no set-up is recorded without what made it one."""
    return {
        name: {
            "overrides": dict(overrides[name]),
            "seeds": {str(seed): dict(by_seed[seed]) for seed in sorted(by_seed)},
            "aggregate": {
                metric: seed_spread([metrics[metric] for metrics in by_seed.values()]) for metric in HEADLINE_METRICS
            },
        }
        for name, by_seed in runs.items()
    }
