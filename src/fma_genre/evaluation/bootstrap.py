"""Bootstrap intervals of one run's test metrics: how much the test tracks alone move them.

Each resample draws the test tracks with replacement; every headline metric (metrics.py's
HEADLINE_METRICS, scikit-learn's definitions) is then recomputed from weighted per-track counts,
without calling scikit-learn: its per-call overhead, once per label for AP and ROC-AUC, made 1000
resamples take minutes. tests/unit/test_bootstrap.py checks the two agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fma_genre.data.vocabulary import Vocabulary
from fma_genre.evaluation.metrics import (
    DEFAULT_THRESHOLD,
    HEADLINE_METRICS,
    predict_top_genre,
    true_top_genres,
)

NO_TOP_GENRE = -1  # top-genre code of a track without a true genre_top


def bootstrap_intervals(
    y_true: np.ndarray,
    scores: np.ndarray,
    vocabulary: Vocabulary,
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
    tracks = _prepare(y_true, scores, vocabulary, top_true_titles, thresholds)
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
    vocabulary: Vocabulary,
    top_true_titles: Sequence[str],
    thresholds: np.ndarray,
) -> _Tracks:
    """Sort, threshold and predict once: none of it depends on which tracks a resample draws."""
    y_true = np.asarray(y_true, dtype=int)
    scores = np.asarray(scores, dtype=float)
    if (
        y_true.shape != scores.shape
        or y_true.shape[1] != len(vocabulary)
        or len(top_true_titles) != len(y_true)
    ):
        raise ValueError(
            f"shapes differ: y_true {y_true.shape}, scores {scores.shape}, {len(vocabulary)} labels, "
            f"{len(top_true_titles)} top genres"
        )
    order = np.argsort(-scores, axis=0, kind="stable")
    truth = true_top_genres(top_true_titles)
    predicted, _ = predict_top_genre(scores, vocabulary)
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
        predicted_top=codes[len(truth) :],
        n_top_codes=len(titles),
    )


def _tie_groups(sorted_scores: np.ndarray) -> dict[str, np.ndarray]:
    """Per position of descending scores, the first and last position holding the same score."""
    positions = np.arange(len(sorted_scores))[:, None]
    ties_previous = np.vstack(
        [np.zeros((1, sorted_scores.shape[1]), bool), sorted_scores[1:] == sorted_scores[:-1]]
    )
    ties_next = np.vstack([ties_previous[1:], np.zeros((1, sorted_scores.shape[1]), bool)])
    tie_start = np.maximum.accumulate(np.where(ties_previous, 0, positions), axis=0)
    tie_end = np.minimum.accumulate(np.where(ties_next, len(sorted_scores), positions)[::-1], axis=0)[::-1]
    return {"tie_start": tie_start, "tie_end": tie_end}


def _outcomes(y_true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    truth = y_true.astype(bool)
    return np.hstack([truth & predicted, ~truth & predicted, truth & ~predicted]).astype(float)


def _headline_metrics(tracks: _Tracks, weights: np.ndarray) -> dict[str, float]:
    """The HEADLINE_METRICS of the tracks drawn `weights` times each (1s: the test set itself).

    Definitions are metrics.classification_metrics' (scikit-learn's), on the resampled tracks.
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
    micro = _ratio(
        2 * true_positives.sum(), 2 * true_positives.sum() + false_positives.sum() + false_negatives.sum()
    )
    return {f"macro_f1{suffix}": _mean(f1[with_positives]), f"micro_f1{suffix}": float(micro)}


def _top_genre_metrics(tracks: _Tracks, weights: np.ndarray) -> dict[str, float]:
    """Top-genre accuracy and macro F1 over the drawn tracks with a true genre_top, the F1
    averaged over the true genres drawn (metrics.top_genre_metrics)."""
    has_truth = tracks.true_top != NO_TOP_GENRE
    true_top, predicted_top, weights = (
        tracks.true_top[has_truth],
        tracks.predicted_top[has_truth],
        weights[has_truth],
    )
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
