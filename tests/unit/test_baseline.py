"""The log-mel statistics baseline: its features, exclusions, and that it learns separable genres."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fma_genre.baseline import run_baseline, track_statistics

LABELS = ["label_12", "label_15", "label_38"]


def test_track_statistics_by_hand():
    frames = np.zeros((3, 80), np.float16)
    frames[:, 0] = [1, 2, 6]  # mean 3, std sqrt(14/3); differences 1, 4: std 1.5
    statistics = track_statistics(frames)
    assert statistics.shape == (240,) and statistics.dtype == np.float32
    np.testing.assert_allclose(statistics[[0, 80, 160]], [3, np.sqrt(14 / 3), 1.5], rtol=1e-6)
    assert not statistics[[1, 81, 161]].any()


def synthetic_manifest(root, rng) -> pd.DataFrame:
    """Genre 12 is loud in the low mel bins, genre 15 in the high ones; nobody in training has 38."""
    rows = []
    for track_id in range(80):
        split = "training" if track_id < 60 else "test"
        genre = track_id % 2
        frames = rng.normal(0.0, 1.0, (50, 80))
        frames[:, :40] += 1.0 if genre == 0 else -1.0
        path = f"features/{track_id}.npy"
        (root / "features").mkdir(exist_ok=True)
        np.save(root / path, frames.astype(np.float16))
        rows.append((track_id, split, path, 50, "ok", 1 - genre, genre, int(track_id == 79)))
    rows.append((80, "test", "", "", "empty file", 1, 0, 0))
    rows.append((81, "test", "features/missing.npy", 50, "ok", 1, 0, 0))
    np.save(root / "features/bad.npy", np.zeros((50, 40), np.float16))
    rows.append((82, "test", "features/bad.npy", 50, "ok", 0, 1, 0))
    (root / "features/junk.npy").write_bytes(b"not numpy")
    rows.append((83, "test", "features/junk.npy", 50, "ok", 0, 1, 0))
    return pd.DataFrame(rows, columns=["track_id", "split", "path", "n_frames", "status", *LABELS])


@pytest.mark.filterwarnings("error")
def test_baseline_separates_genres_and_reports_exclusions(tmp_path):
    manifest = synthetic_manifest(tmp_path, np.random.default_rng(0))
    track_ids, scores, excluded = run_baseline(manifest, LABELS, base_dir=tmp_path)

    assert track_ids.tolist() == list(range(60, 80))
    assert scores.shape == (20, 3)
    assert ((scores >= 0) & (scores <= 1)).all()
    truth = manifest.set_index("track_id").loc[track_ids, LABELS].to_numpy()
    assert roc_auc_score(truth[:, 0], scores[:, 0]) == 1.0
    assert roc_auc_score(truth[:, 1], scores[:, 1]) == 1.0
    # No training positive: a constant 0, even for the test track that has the label.
    assert (scores[:, 2] == 0).all()
    assert excluded.pop(83).startswith("unreadable feature file: ")
    assert excluded == {
        80: "empty file",
        81: f"missing feature file: {tmp_path / 'features/missing.npy'}",
        82: "bad feature shape (50, 40)",
    }
