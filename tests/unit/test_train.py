"""Training and scoring on a tiny synthetic dataset with the tiny model."""

import itertools
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from transformers import AutoFeatureExtractor, pipeline

from fma_genre import train as train_module
from fma_genre.audio import decode_mono_16k
from fma_genre.model import load_classifier, write_tiny_model
from fma_genre.train import (
    LogMelWindows,
    TrainingInterrupted,
    collate,
    evaluation_windows,
    random_crops,
    read_split,
    score_tracks,
    train,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# (genre_id, title, top_level): three top genres and a sub-genre of Rock.
GENRES = [(12, "Rock", 1), (15, "Electronic", 1), (21, "Hip-Hop", 1), (25, "Punk", 0)]
TITLES = [title for _, title, _ in GENRES]
N_FRAMES = 300  # 3 s clips
SETTINGS = dict(
    batch_size=4,
    crop_seconds=1.0,
    lr_backbone=3e-3,
    lr_head=3e-3,
    warmup_fraction=0.2,
    seed=0,
    eval_batch_size=8,
    threads=1,  # tiny tensors: a second OpenMP thread only adds synchronisation
)
TIMING_COLUMNS = ["epoch_seconds", "train_clips_per_second"]


def write_dataset(root: Path, tracks_per_genre=(4, 2, 2)) -> tuple[Path, Path]:
    """Feature files whose genre is a band of mel bins pulsing every 100 ms (a pattern, unlike a
    louder band, that survives the per-crop normalisation); the manifest and the vocabulary."""
    rng = np.random.default_rng(0)
    (root / "features").mkdir(parents=True)
    rows = []
    track_ids = itertools.count(1)
    for split, n_tracks in zip(("training", "validation", "test"), tracks_per_genre):
        for genre, (_, title, _) in enumerate(GENRES[:3]):
            for i in range(n_tracks):
                track_id = next(track_ids)
                frames = rng.normal(size=(N_FRAMES, 80))
                frames[:, 25 * genre : 25 * genre + 20] += 3.0 * (np.arange(N_FRAMES) % 10 < 3)[:, None]
                path = root / "features" / f"{track_id:06d}.npy"
                np.save(path, frames.astype(np.float16))
                labels = [int(genre == g) for g in range(3)] + [int(genre == 0 and i % 2 == 0)]
                rows.append([track_id, split, title, str(path), N_FRAMES, "ok", *labels])
    columns = ["track_id", "split", "genre_top", "path", "n_frames", "status"] + [
        f"label_{g}" for g, _, _ in GENRES
    ]
    pd.DataFrame(rows, columns=columns).to_csv(root / "manifest.csv", index=False)
    vocabulary = pd.DataFrame(
        [(g, t, top, 4) for g, t, top in GENRES],
        columns=["genre_id", "title", "top_level", "n_training_tracks"],
    )
    vocabulary.to_csv(root / "vocabulary.tsv", sep="\t", index=False)
    return root / "manifest.csv", root / "vocabulary.tsv"


# Tiny tensors: a second OpenMP thread only adds synchronisation (and stalls on a busy machine).
pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("dataset")
    manifest, vocabulary = write_dataset(root)
    write_tiny_model(root / "tiny", seed=0)
    return manifest, vocabulary, root / "tiny"


def run_training(dataset, out: Path, epochs: int, **overrides) -> dict:
    manifest, vocabulary, tiny = dataset
    return train(
        manifest,
        vocabulary,
        tiny,
        out / "model",
        out / "training_log.csv",
        out / "state",
        epochs=epochs,
        **(SETTINGS | overrides),
    )


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> tuple[Path, dict, pd.DataFrame]:
    """An uninterrupted two-epoch run: its output folder, summary and training log."""
    out = tmp_path_factory.mktemp("trained")
    summary = run_training(dataset, out, epochs=2)
    return out, summary, pd.read_csv(out / "training_log.csv")


def without_timing(log: pd.DataFrame) -> pd.DataFrame:
    return log.drop(columns=TIMING_COLUMNS)


def test_collate_pads_with_the_extractor_padding_value_and_masks_it():
    short, long = np.full((2, 160), 5.0, dtype=np.float32), np.full((3, 160), 7.0, dtype=np.float32)
    features, mask, tracks = collate([(short, 4), (long, 9)])
    assert features.shape == (2, 3, 160) and features.dtype == torch.float32
    assert torch.equal(mask, torch.tensor([[1, 1, 0], [1, 1, 1]]))
    assert (
        torch.all(features[0, 2] == 1.0)
        and torch.all(features[0, :2] == 5.0)
        and torch.all(features[1] == 7.0)
    )
    assert tracks.tolist() == [4, 9]


def test_crops_and_windows_cover_what_they_should():
    n_frames = np.array([2998, 600, 1700])
    crops = random_crops(n_frames, 1000, np.random.default_rng(1))
    assert sorted(track for track, _, _ in crops) == [0, 1, 2]
    for track, start, length in crops:
        assert length == min(1000, n_frames[track]) and 0 <= start <= n_frames[track] - length
    assert crops == random_crops(n_frames, 1000, np.random.default_rng(1))
    assert crops != random_crops(n_frames, 1000, np.random.default_rng(2))

    windows = evaluation_windows(n_frames, 1000)
    assert [(t, length) for t, _, length in windows] == [
        (0, 999),
        (0, 999),
        (0, 1000),
        (1, 600),
        (2, 850),
        (2, 850),
    ]
    for track in range(3):
        assert sum(length for t, _, length in windows if t == track) == n_frames[track]


def test_dataset_reads_the_crop_normalised_and_stacked(dataset):
    manifest, _, _ = dataset
    tracks = read_split(manifest, "training")
    features, track = LogMelWindows(tracks.paths, [(3, 100, 60)])[0]
    assert features.shape == (30, 160) and features.dtype == np.float32 and track == 3
    crop = np.load(tracks.paths[3])[100:160].astype(np.float32)
    np.testing.assert_allclose(
        features[:, :80], ((crop - crop.mean(0)) / crop.std(0, ddof=1))[::2], atol=1e-4
    )


def test_unusable_feature_files_are_excluded_with_their_reason(dataset, tmp_path):
    manifest, _, _ = dataset
    table = pd.read_csv(manifest, keep_default_na=False)
    test_rows = table.index[table["split"] == "test"]
    bad = {
        int(table.loc[test_rows[0], "track_id"]): ("missing", None),
        int(table.loc[test_rows[1], "track_id"]): ("shape", np.zeros((N_FRAMES, 40), dtype=np.float16)),
        int(table.loc[test_rows[2], "track_id"]): ("dtype", np.zeros((N_FRAMES, 80), dtype=np.float32)),
    }
    for track_id, (_, array) in bad.items():
        path = tmp_path / f"{track_id}.npy"
        if array is not None:
            np.save(path, array)
        table.loc[table["track_id"] == track_id, "path"] = str(path)
    table.loc[test_rows[3], ["path", "status"]] = ["", "too short: 2.0 s < 5.0 s"]
    bad_manifest = tmp_path / "manifest.csv"
    table.to_csv(bad_manifest, index=False)

    tracks = read_split(bad_manifest, "test")
    expected = {
        int(
            table.loc[test_rows[0], "track_id"]
        ): f"missing feature file: {tmp_path}/{table.loc[test_rows[0], 'track_id']}.npy",
        int(table.loc[test_rows[1], "track_id"]): f"bad feature shape ({N_FRAMES}, 40)",
        int(table.loc[test_rows[2], "track_id"]): "bad feature dtype float32",
        int(table.loc[test_rows[3], "track_id"]): "too short: 2.0 s < 5.0 s",
    }
    assert tracks.excluded == expected
    assert len(tracks.track_ids) == len(test_rows) - 4 and not set(tracks.track_ids) & set(expected)


def test_a_few_optimiser_steps_lower_the_loss(dataset):
    manifest, _, tiny = dataset
    torch.manual_seed(0)
    tracks = read_split(manifest, "training")
    model = load_classifier(tiny, TITLES)
    features, mask, indices = collate(
        [LogMelWindows(tracks.paths, [(t, 0, 100)])[0] for t in range(len(tracks.paths))]
    )
    targets = torch.from_numpy(tracks.targets)[indices]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            model(input_features=features, attention_mask=mask).logits, targets
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_training_writes_the_best_model_log_and_summary(trained):
    out, summary, log = trained
    assert list(log.columns) == train_module.LOG_COLUMNS
    assert log["epoch"].tolist() == [1, 2] and log["step"].tolist() == [3, 6]
    assert log["train_clips_per_second"].gt(0).all()
    # 6 steps, 1 of warm-up, then cosine decay: after step 3 it is 2/5 of the way down, after step 6 at zero.
    assert log["lr_head"].tolist() == pytest.approx([3e-3 * 0.5 * (1 + np.cos(np.pi * 2 / 5)), 0.0], rel=1e-5)
    best = log.loc[log["val_macro_f1"].idxmax()]
    assert summary["best_epoch"] == best["epoch"]
    assert summary["validation"]["macro_f1"] == pytest.approx(best["val_macro_f1"], abs=1e-5)
    assert summary["epochs_trained"] == 2 and summary["train_clips_per_second"] > 0
    saved = sorted(p.name for p in (out / "model").iterdir())
    assert saved == [
        "README.md",
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "training_summary.json",
    ]
    card = (out / "model" / "README.md").read_text()
    assert (
        f"macro_f1 {summary['validation']['macro_f1']:.4f}" in card
        and "Rock, Electronic, Hip-Hop, Punk" in card
    )
    assert not (out / "state" / train_module.STATE_FILE).exists()  # deleted once the model is written


def test_killed_run_continues_at_the_next_epoch(dataset, trained, tmp_path, monkeypatch):
    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    # Killed after two epochs: the state is saved, the model never written.
    with monkeypatch.context() as patch:
        patch.setattr(train_module, "save_model", killed)
        with pytest.raises(RuntimeError, match="killed"):
            run_training(dataset, tmp_path, epochs=2)
    assert (tmp_path / "state" / train_module.STATE_FILE).exists()
    first_two = pd.read_csv(tmp_path / "training_log.csv")
    # Same config, same results: the run is deterministic on CPU.
    pd.testing.assert_frame_equal(without_timing(first_two), without_timing(trained[2]))

    summary = run_training(dataset, tmp_path, epochs=4)
    log = pd.read_csv(tmp_path / "training_log.csv")
    assert log["epoch"].tolist() == [1, 2, 3, 4] and summary["epochs_trained"] == 4
    pd.testing.assert_frame_equal(log.iloc[:2], first_two)
    assert (tmp_path / "model" / "model.safetensors").exists()
    assert load_classifier(tmp_path / "model").config.id2label == dict(enumerate(TITLES))


def test_sigterm_mid_epoch_saves_and_the_rerun_matches_an_uninterrupted_run(
    dataset, trained, tmp_path, monkeypatch
):
    real_load_classifier = train_module.load_classifier
    training_forwards = itertools.count(1)

    def load_classifier_sending_sigterm(*args, **kwargs):
        model = real_load_classifier(*args, **kwargs)

        def sigterm_on_second_training_batch(module, inputs, output):
            if module.training and next(training_forwards) == 2:
                os.kill(os.getpid(), signal.SIGTERM)  # as SLURM does before the time limit

        model.register_forward_hook(sigterm_on_second_training_batch)
        return model

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "load_classifier", load_classifier_sending_sigterm)
        with pytest.raises(TrainingInterrupted, match=r"step 2 \(epoch 1\)"):
            run_training(dataset, tmp_path, epochs=2)
    state = torch.load(tmp_path / "state" / train_module.STATE_FILE, weights_only=False)
    assert (state["progress"]["epochs_done"], state["progress"]["batches_done"]) == (0, 2)
    assert not (tmp_path / "model").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed again

    summary = run_training(dataset, tmp_path, epochs=2)
    log = pd.read_csv(tmp_path / "training_log.csv")
    pd.testing.assert_frame_equal(without_timing(log), without_timing(trained[2]))
    assert summary["best_epoch"] == trained[1]["best_epoch"]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_non_finite_loss_names_the_step_epoch_and_tracks(dataset, tmp_path):
    manifest, vocabulary, tiny = dataset
    table = pd.read_csv(manifest, keep_default_na=False)
    first = table.index[table["split"] == "training"][0]
    frames = np.full((N_FRAMES, 80), np.inf, dtype=np.float16)
    np.save(tmp_path / "inf.npy", frames)
    table.loc[first, "path"] = str(tmp_path / "inf.npy")
    table.to_csv(tmp_path / "manifest.csv", index=False)
    track_id = int(table.loc[first, "track_id"])
    with pytest.raises(FloatingPointError, match=rf"step 1 \(epoch 1\).*track ids.*\b{track_id}\b"):
        train(
            tmp_path / "manifest.csv",
            vocabulary,
            tiny,
            tmp_path / "model",
            tmp_path / "log.csv",
            tmp_path / "state",
            epochs=1,
            **(SETTINGS | dict(batch_size=12)),
        )


def test_score_tracks_gives_probabilities_for_the_split(dataset, trained):
    manifest, _, _ = dataset
    track_ids, scores, excluded = score_tracks(
        trained[0] / "model", manifest, "test", batch_size=4, threads=1
    )
    table = pd.read_csv(manifest)
    assert track_ids.tolist() == table.loc[table["split"] == "test", "track_id"].tolist()
    assert scores.shape == (len(track_ids), len(GENRES)) and excluded == {}
    assert ((scores > 0) & (scores < 1)).all() and scores.std() > 0


def test_saved_model_classifies_audio_in_a_transformers_pipeline(trained, tmp_path):
    model_dir = trained[0] / "model"
    seconds = np.arange(3 * 44100) / 44100
    sf.write(
        tmp_path / "clip.wav",
        0.3 * np.sin(2 * np.pi * 440 * seconds) * np.sin(2 * np.pi * 2 * seconds),
        44100,
    )
    waveform = decode_mono_16k(tmp_path / "clip.wav")

    results = pipeline("audio-classification", model=str(model_dir), device="cpu")(waveform, top_k=None)
    assert sorted(r["label"] for r in results) == sorted(TITLES)
    # multi_label_classification: the pipeline applies a sigmoid per label, not a softmax.
    extractor = AutoFeatureExtractor.from_pretrained(model_dir)
    model = load_classifier(model_dir).eval()
    with torch.no_grad():
        probabilities = torch.sigmoid(
            model(**extractor(waveform, sampling_rate=16000, return_tensors="pt")).logits[0]
        )
    for result in results:
        assert result["score"] == pytest.approx(probabilities[TITLES.index(result["label"])].item(), abs=1e-5)


def test_benchmark_quick_run_prints_the_ratios():
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_training.py", "--quick", "--threads", "1"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    assert "training crops/s" in result.stdout
    speed_up = float(re.search(r"speed-up ([\d.]+)x", result.stdout).group(1))
    memory_ratio = float(re.search(r"memory ratio fast/stock ([\d.]+)", result.stdout).group(1))
    logit_difference = float(re.search(r"max logit difference (\S+)", result.stdout).group(1))
    assert speed_up > 0 and 0 < memory_ratio < 1 and logit_difference < 1e-5
    assert re.search(r"\(3\) tiny model training on CPU.*: [\d.]+ clips/s", result.stdout)
