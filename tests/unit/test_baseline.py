"""The log-mel statistics baseline: its features, the levels it needs, C chosen on validation,
tuned thresholds and exclusions."""

import json

import numpy as np
import pandas as pd
import pytest
import scipy.fft
from sklearn.metrics import roc_auc_score

from fma_genre.data.vocabulary import Vocabulary
from fma_genre.evaluation.baseline import C_GRID, N_CEPSTRA, run_baseline, track_statistics, write_baseline
from fma_genre.features.logmel import centre_for_float16
from fma_genre.features.shard import LEVEL_COLUMNS
from fma_genre.scoring.tables import read_scores_csv

# Rock (12) and Electronic (15) are top genres; Punk (25) a sub-genre nobody in training has.
GENRES = [(12, "Rock", 1), (15, "Electronic", 1), (25, "Punk", 0)]
LABELS = [f"label_{g}" for g, _, _ in GENRES]


def test_track_statistics_by_hand():
    centred = np.zeros((3, 80), np.float16)
    centred[:, 0] = [-2, -1, 3]  # std sqrt(14/3); differences 1, 4: std 1.5
    levels = np.full(80, 20.0, np.float32)
    statistics = track_statistics(centred, levels)
    assert statistics.shape == (80 + N_CEPSTRA + 80 + 80 + 2 * N_CEPSTRA,) == (300,)
    assert statistics.dtype == np.float32
    np.testing.assert_allclose(statistics[:80], 20.0)  # the absolute levels themselves
    # cepstral means: the DCT of the levels (flat: all energy in c0 = 20 * sqrt(80))
    np.testing.assert_allclose(statistics[80 : 80 + N_CEPSTRA], [20 * np.sqrt(80)] + [0] * 19, atol=1e-4)
    spread = statistics[80 + N_CEPSTRA :]
    np.testing.assert_allclose(spread[[0, 80]], [np.sqrt(14 / 3), 1.5], rtol=1e-6)
    cepstra = scipy.fft.dct(centred.astype(np.float32), type=2, norm="ortho", axis=1)[:, :N_CEPSTRA]
    np.testing.assert_allclose(spread[160 : 160 + N_CEPSTRA], cepstra.std(axis=0), rtol=1e-5)
    without = track_statistics(centred, levels, with_levels=False)
    np.testing.assert_array_equal(without, spread)


def write_dataset(root, rng):
    """Rock is 3 dB-ish louder in the low bins than Electronic, with the same centred frames'
    distribution: only the absolute levels tell them apart. Splits 40/20/20, plus bad tracks."""
    (root / "features").mkdir()
    manifest, status = [], []
    for track_id in range(80):
        split = "training" if track_id < 40 else ("validation" if track_id < 60 else "test")
        genre = track_id % 2
        log_mel = rng.normal(20.0, 1.0, (60, 80))
        log_mel[:, :40] += 1.0 if genre == 0 else -1.0
        centred, levels = centre_for_float16(log_mel.astype(np.float32))
        path = root / "features" / f"{track_id}.npy"
        np.save(path, centred)
        labels = [1 - genre, genre, int(track_id == 79)]
        manifest.append((track_id, split, ["Rock", "Electronic"][genre], str(path), 60, "x", "ok", *labels))
        status.append((track_id, str(path), 60, "x", "ok", *levels))
    manifest.append((80, "test", "Rock", "", 0, "", "empty file", 1, 0, 0))
    status.append((80, "", "", "", "empty file", *[""] * 80))
    manifest.append((81, "test", "Rock", str(root / "features/missing.npy"), 60, "x", "ok", 1, 0, 0))
    pd.DataFrame(
        manifest, columns=["track_id", "split", "genre_top", "path", "n_frames", "sha1", "status", *LABELS]
    ).to_csv(root / "manifest.csv", index=False)
    pd.DataFrame(status, columns=["track_id", "path", "n_frames", "sha1", "status", *LEVEL_COLUMNS]).to_csv(
        root / "000.status.csv", index=False
    )
    pd.DataFrame(
        [(g, t, top, 20) for g, t, top in GENRES],
        columns=["genre_id", "title", "top_level", "n_training_tracks"],
    ).to_csv(root / "vocabulary.tsv", sep="\t", index=False)
    return root / "manifest.csv", [root / "000.status.csv"], root / "vocabulary.tsv"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("baseline"), np.random.default_rng(0))


@pytest.mark.filterwarnings("error")
def test_levels_separate_what_centred_frames_cannot(dataset):
    manifest, status, vocabulary = dataset
    truth = pd.read_csv(manifest).set_index("track_id")
    aucs = {}
    for with_levels in (True, False):
        result = run_baseline(manifest, status, Vocabulary.read(vocabulary), with_levels=with_levels)
        assert result["test_ids"].tolist() == list(range(60, 80))
        y = truth.loc[result["test_ids"], LABELS].to_numpy()
        aucs[with_levels] = roc_auc_score(y[:, 0], result["test_scores"][:, 0])
        assert result["summary"]["features"] == (300 if with_levels else 200)
    assert aucs[True] == 1.0 and aucs[False] < 0.8, aucs


@pytest.mark.filterwarnings("error")
def test_c_is_chosen_on_validation_and_thresholds_tuned_there(dataset, tmp_path):
    manifest, status, vocabulary = dataset
    result = write_baseline(
        manifest,
        status,
        vocabulary,
        tmp_path / "scores.csv",
        tmp_path / "summary.json",
        selection_metric="mAP",
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result["summary"]))
    by_c = summary["validation_by_C"]
    assert list(by_c) == [str(c) for c in C_GRID]
    assert summary["C"] == max(C_GRID, key=lambda c: by_c[str(c)])  # first of the best: strongest L2
    assert summary["validation"]["mAP"] == by_c[str(summary["C"])]
    assert summary["with_levels"] is True and summary["selection_metric"] == "mAP"
    assert set(summary["label_thresholds"]) == {"Rock", "Electronic", "Punk"}
    assert summary["label_thresholds"]["Punk"] == 0.5  # no validation positive: the default

    track_ids, scores, excluded = read_scores_csv(tmp_path / "scores.csv", LABELS)
    assert track_ids.tolist() == list(range(60, 80)) and scores.shape == (20, 3)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert (scores[:, 2] == 0).all()  # no training positive: a constant 0
    assert excluded == {
        80: "empty file",
        81: f"missing feature file: {manifest.parent / 'features/missing.npy'}",
    }
