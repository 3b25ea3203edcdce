"""The report's figures come out as PNGs of the size their content implies."""

import matplotlib.image
import pandas as pd

from fma_genre.evaluation.plots import plot_confusion_matrix, plot_training_curves


def test_confusion_matrix_png_grows_with_the_genres(tmp_path):
    plot_confusion_matrix(
        [[5, 1, 0], [2, 3, 0], [0, 0, 0]], ["Rock", "Pop", "Folk"], tmp_path / "small.png", "test"
    )
    labels = [f"genre {i}" for i in range(8)]
    matrix = [[10 * (row == column) + column for column in range(8)] for row in range(8)]
    plot_confusion_matrix(matrix, labels, tmp_path / "large.png", "test")
    # 5 in minimum, then 2.5 in + 0.7 in per genre, at 100 dpi; RGBA.
    assert matplotlib.image.imread(tmp_path / "small.png").shape == (500, 500, 4)
    large = matplotlib.image.imread(tmp_path / "large.png")
    assert large.shape == (810, 810, 4)
    assert large[..., :3].std() > 0.05  # not a blank canvas
    assert sorted(p.name for p in tmp_path.iterdir()) == ["large.png", "small.png"]  # no temporary left


def test_training_curves_png(tmp_path):
    log = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "step": [10, 20, 30],
            "train_loss": [0.7, 0.5, 0.4],
            "val_loss": [0.6, 0.55, 0.5],
            "val_macro_f1": [0.2, 0.3, 0.35],
            "val_mAP": [0.25, 0.33, 0.4],
            "val_top_genre_accuracy": [0.3, 0.4, 0.45],
            "lr_backbone": [1e-5] * 3,
            "lr_head": [1e-3] * 3,
            "epoch_seconds": [60.0] * 3,
            "train_clips_per_second": [40.0] * 3,
        }
    )
    log.to_csv(tmp_path / "training_log.csv", index=False)
    plot_training_curves(tmp_path / "training_log.csv", tmp_path / "curves.png")
    image = matplotlib.image.imread(tmp_path / "curves.png")
    assert image.shape == (450, 1100, 4)
    assert image[..., :3].std() > 0.05
