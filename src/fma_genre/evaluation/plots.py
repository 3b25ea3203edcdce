"""The report's figures: the model's top-genre confusion matrix on the test split and the
training curves, drawn from the score table and the training log (the `plots` rule).

Figures have a fixed size in inches at a fixed DPI (no tight bounding box), so a PNG's pixel size
follows from its content count alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fma_genre.data.vocabulary import Vocabulary  # noqa: E402
from fma_genre.evaluation.metrics import top_genre_metrics  # noqa: E402
from fma_genre.features.splits import read_manifest  # noqa: E402
from fma_genre.io.atomic import atomic_path  # noqa: E402
from fma_genre.scoring.tables import common_tracks, read_scores_csv, rows_for  # noqa: E402

log = logging.getLogger(__name__)

DPI = 100
CONFUSION_INCHES_PER_LABEL = 0.7
CONFUSION_MIN_INCHES = 5.0
TRAINING_CURVES_INCHES = (11.0, 4.5)


def confusion_figure_inches(n_labels: int) -> float:
    """Side of the square confusion-matrix figure: room for the labels plus a cell per genre."""
    return max(CONFUSION_MIN_INCHES, 2.5 + CONFUSION_INCHES_PER_LABEL * n_labels)


def _save(figure: plt.Figure, png_path: str | os.PathLike) -> None:
    with atomic_path(png_path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
    plt.close(figure)


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], png_path: str | os.PathLike, title: str
) -> None:
    """Rows (true genres) normalised to fractions for the colours; each cell annotated with its count."""
    counts = np.asarray(matrix, dtype=int).reshape(len(labels), len(labels))
    row_totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)

    side = confusion_figure_inches(len(labels))
    figure, axes = plt.subplots(figsize=(side, side), layout="constrained")
    image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, shrink=0.8, label="fraction of the true genre")
    for (row, column), count in np.ndenumerate(counts):
        colour = "white" if fractions[row, column] > 0.5 else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    ticks = np.arange(len(labels))
    axes.set_xticks(ticks, labels, rotation=45, ha="right")
    axes.set_yticks(ticks, labels)
    axes.set_xlabel("predicted top genre")
    axes.set_ylabel("true top genre")
    axes.set_title(title)
    _save(figure, png_path)


def plot_training_curves(training_log_csv: str | os.PathLike, png_path: str | os.PathLike) -> None:
    """Left: train and validation loss; right: validation mAP, top-genre accuracy and macro-F1."""
    training_log = pd.read_csv(training_log_csv)
    panels = {
        "loss": {"train_loss": "train", "val_loss": "validation"},
        "validation metric": {
            "val_mAP": "mAP",
            "val_top_genre_accuracy": "top-genre accuracy",
            "val_macro_f1": "macro F1 at 0.5",
        },
    }
    figure, all_axes = plt.subplots(1, len(panels), figsize=TRAINING_CURVES_INCHES, layout="constrained")
    for axes, (ylabel, series) in zip(all_axes, panels.items()):
        for column, name in series.items():
            # Epochs where a metric is undefined (NaN: no positive label) are skipped, not gaps.
            points = training_log[["epoch", column]].dropna()
            axes.plot(points["epoch"], points[column], marker="o", label=name)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        axes.legend()
    _save(figure, png_path)


def draw_figures(
    *,
    test_scores_csv,
    baseline_scores_csv,
    manifest_csv,
    vocabulary_tsv,
    training_log_csv,
    confusion_matrix_png,
    training_curves_png,
    model_name: str,
) -> dict:
    """Both figures of the report, from the model's test scores and the training log.

    The confusion matrix covers the tracks that metrics.json covers: those both the model and
    the baseline scored. Returns its top-genre metrics.
    """
    vocabulary = Vocabulary.read(vocabulary_tsv)
    track_ids, scores, _ = read_scores_csv(test_scores_csv, vocabulary.columns)
    used = common_tracks(track_ids, read_scores_csv(baseline_scores_csv, vocabulary.columns)[0])
    genre_top = read_manifest(manifest_csv).set_index("track_id").loc[used, "genre_top"]
    top = top_genre_metrics(rows_for(track_ids, scores, used), vocabulary, genre_top.tolist())
    plot_confusion_matrix(
        top["confusion_matrix"]["matrix"],
        top["confusion_matrix"]["labels"],
        confusion_matrix_png,
        f"{model_name}: top genre, {top['n_tracks_top_genre']} test tracks "
        f"(accuracy {top['top_genre_accuracy']:.3f})",
    )
    plot_training_curves(training_log_csv, training_curves_png)
    log.info(
        "confusion matrix of %d test tracks, top-genre accuracy %.4f",
        top["n_tracks_top_genre"],
        top["top_genre_accuracy"],
    )
    return top
