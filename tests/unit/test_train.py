"""Training, checkpoints and scoring on a tiny synthetic dataset with the tiny model."""

import gc
import hashlib
import itertools
import json
import logging
import os
import re
import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file
from transformers import AutoFeatureExtractor, pipeline

from fma_genre.evaluation.metrics import tune_thresholds
from fma_genre.features.audio import decode_mono_16k
from fma_genre.features.crops import evaluation_windows, random_crops
from fma_genre.features.loader import LogMelWindows, WindowLoader, collate
from fma_genre.features.splits import read_split
from fma_genre.models.classifier import load_classifier
from fma_genre.runtime.processes import Processes
from fma_genre.scoring.windows import score_split, window_logits
from fma_genre.training import loop as train_module
from fma_genre.training import resume
from fma_genre.training import validation as validation_module
from fma_genre.training.loop import TrainingInterrupted, train
from fma_genre.training.probe import head_logits
from fma_genre.training.probe_cache import open_probe_cache, write_probe_cache
from fma_genre.training.run_state import Progress

from training_defaults import training_settings

# (genre_id, title, top_level): three top genres and a sub-genre of Rock.
GENRES = [(12, "Rock", 1), (15, "Electronic", 1), (21, "Hip-Hop", 1), (25, "Punk", 0)]
TITLES = [title for _, title, _ in GENRES]
N_FRAMES = 300  # 3 s clips
SETTINGS = dict(
    batch_size=4, crop_seconds=1.0, lr_backbone=3e-3, lr_head=3e-3, warmup_fraction=0.2, eval_batch_size=8
)
THREADS = 1  # tiny tensors: a second OpenMP thread only adds synchronisation
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
                sha1 = hashlib.sha1(path.read_bytes()).hexdigest()
                labels = [int(genre == g) for g in range(3)] + [int(genre == 0 and i % 2 == 0)]
                rows.append([track_id, split, title, str(path), N_FRAMES, sha1, "ok", *labels])
    columns = ["track_id", "split", "genre_top", "path", "n_frames", "sha1", "status"] + [
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


def write_cache(dataset, folder: Path, crop_seconds: float = SETTINGS["crop_seconds"]) -> Path:
    """The probe cache of the dataset's tiny backbone, as rule probe_cache writes it."""
    manifest, _, tiny = dataset
    if not folder.exists():
        write_probe_cache(
            str(manifest), str(tiny), str(folder), window_seconds=crop_seconds, batch_size=8, threads=THREADS
        )
    return folder


def run_training(dataset, out: Path, epochs: int, manifest=None, run_name="training", **overrides) -> dict:
    default_manifest, vocabulary, tiny = dataset
    settings = training_settings(epochs=epochs, **(SETTINGS | overrides))
    return train(
        manifest or default_manifest,
        vocabulary,
        tiny,
        out / "model",
        out / "training_log.csv",
        out / "state",
        out / "tensorboard",
        settings,
        probe_cache_dir=write_cache(dataset, out / "probe_cache") if settings.mode == "probe" else None,
        run_name=run_name,
        threads=THREADS,
    )


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> tuple[Path, dict, pd.DataFrame]:
    """An uninterrupted three-epoch run: its output folder, summary and training log."""
    out = tmp_path_factory.mktemp("trained")
    summary = run_training(dataset, out, epochs=3)
    return out, summary, pd.read_csv(out / "training_log.csv")


def without_timing(log: pd.DataFrame) -> pd.DataFrame:
    return log.drop(columns=TIMING_COLUMNS)


def crash_on_training_forward(monkeypatch, number: int, action) -> None:
    """Make the n-th training forward pass run `action` (a SIGTERM, an exception)."""
    real_load_classifier = train_module.load_classifier
    forwards = itertools.count(1)

    def load_classifier_with_hook(*args, **kwargs):
        model = real_load_classifier(*args, **kwargs)

        def hook(module, inputs, output):
            if module.training and next(forwards) == number:
                action()

        model.register_forward_hook(hook)
        return model

    monkeypatch.setattr(train_module, "load_classifier", load_classifier_with_hook)


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


def test_windows_read_from_files_or_memory_are_normalised_and_stacked(dataset):
    manifest, _, _ = dataset
    tracks = read_split(manifest, "training")
    features, track = LogMelWindows(tracks.paths)[(3, 100, 60)]
    assert features.shape == (30, 160) and features.dtype == np.float32 and track == 3
    crop = np.load(tracks.paths[3])[100:160].astype(np.float32)
    np.testing.assert_allclose(
        features[:, :80], ((crop - crop.mean(0)) / crop.std(0, ddof=1))[::2], atol=1e-4
    )
    in_memory = [np.load(path).astype(np.float32) for path in tracks.paths]
    from_memory, _ = LogMelWindows(in_memory)[(3, 100, 60)]
    np.testing.assert_allclose(from_memory, features, atol=1e-6)


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
        [LogMelWindows(tracks.paths)[(t, 0, 100)] for t in range(len(tracks.paths))]
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


def test_training_writes_the_best_model_log_summary_and_thresholds(dataset, trained):
    manifest, _, tiny = dataset
    out, summary, log = trained
    assert list(log.columns) == validation_module.LOG_COLUMNS
    assert log["epoch"].tolist() == [1, 2, 3] and log["step"].tolist() == [3, 6, 9]
    assert log["train_clips_per_second"].gt(0).all()
    # 9 steps, 2 of warm-up, then cosine decay: after step 3 it is 1/7 of the way down.
    assert log["lr_head"].iloc[0] == pytest.approx(3e-3 * 0.5 * (1 + np.cos(np.pi / 7)), rel=1e-5)
    assert log["lr_head"].iloc[-1] == 0.0
    # mAP selects by default: the first epoch with the best validation mAP.
    assert summary["selection_metric"] == "mAP"
    assert summary["best_epoch"] == log["val_mAP"].idxmax() + 1
    assert summary["validation"]["mAP"] == pytest.approx(log["val_mAP"].max(), abs=1e-5)
    assert summary["epochs_trained"] == 3 and summary["train_clips_per_second"] > 0
    assert summary["base_model_source"] == json.loads((tiny / "source.json").read_text())
    saved = sorted(p.name for p in (out / "model").iterdir())
    assert saved == [
        "README.md",
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "training_summary.json",
    ]
    card = (out / "model" / "README.md").read_text()
    assert "selected on validation **mAP**" in card and f"epoch {summary['best_epoch']} of 3" in card
    assert summary["base_model_source"]["commit"] in card and "Rock, Electronic, Hip-Hop, Punk" in card
    # Nothing of the state is left once the model is written.
    assert sorted(p.name for p in (out / "state").iterdir()) == []

    # The thresholds are those tuned on the best epoch's validation scores, which the saved
    # model reproduces when it scores the validation split through the scoring path.
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["window_seconds"] == SETTINGS["crop_seconds"]
    track_ids, scores, _ = score_split(out / "model", manifest, "validation", batch_size=8, threads=1)
    validation = read_split(manifest, "validation")
    expected = dict(zip(TITLES, tune_thresholds(validation.targets, scores).tolist()))
    assert config["label_thresholds"] == pytest.approx(expected, abs=1e-6)
    assert len(set(config["label_thresholds"].values())) > 1  # tuned, not the default everywhere


def tensorboard_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_gets_every_step_and_epoch(trained):
    out, _, log = trained
    scalars = tensorboard_scalars(out / "tensorboard")
    assert [step for step, _ in scalars["train/loss"]] == list(range(1, 10))
    assert [step for step, _ in scalars["learning_rate/head"]] == list(range(1, 10))
    assert [value for _, value in scalars["epoch/val_mAP"]] == pytest.approx(
        log["val_mAP"].tolist(), abs=1e-5
    )
    assert [step for step, _ in scalars["epoch/train_loss"]] == log["step"].tolist()


def test_a_resumed_run_logs_each_step_once_to_tensorboard(dataset, trained, tmp_path, monkeypatch):
    crash_on_training_forward(monkeypatch, 5, lambda: os.kill(os.getpid(), signal.SIGTERM))
    with pytest.raises(TrainingInterrupted):
        run_training(dataset, tmp_path, epochs=3)
    monkeypatch.undo()
    run_training(dataset, tmp_path, epochs=3)
    assert [step for step, _ in tensorboard_scalars(tmp_path / "tensorboard")["train/loss"]] == list(
        range(1, 10)
    )


def test_mlflow_gets_the_settings_and_every_step_when_a_tracking_uri_is_set(dataset, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "mlruns").as_uri()  # a local file store, as a user's server would be
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "fma-genre-test")
    monkeypatch.setenv(
        "MLFLOW_ALLOW_FILE_STORE", "true"
    )  # MLflow 3 wants a database; a folder is enough here
    requests = []
    real_log_batch = MlflowClient.log_batch
    monkeypatch.setattr(
        MlflowClient, "log_batch", lambda self, *a, **k: requests.append(1) or real_log_batch(self, *a, **k)
    )
    run_training(dataset, tmp_path, epochs=2, run_name="finetune/seed0")
    assert len(requests) <= 3  # one per epoch and one at the end, not one per step (6 steps)
    client = MlflowClient(tracking_uri=store)
    [run] = client.search_runs([client.get_experiment_by_name("fma-genre-test").experiment_id])
    assert run.info.run_name == "finetune/seed0" and run.info.status == "FINISHED"
    assert run.data.params["lr_head"] == str(SETTINGS["lr_head"]) and run.data.params["mode"] == "finetune"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == list(range(1, 7))
    log = pd.read_csv(tmp_path / "training_log.csv")
    val_map = client.get_metric_history(run.info.run_id, "epoch/val_mAP")
    assert [m.value for m in val_map] == pytest.approx(log["val_mAP"].tolist(), abs=1e-5)


@pytest.mark.parametrize("mode", ["probe", "lora"])
def test_probe_and_lora_save_a_plain_model_that_scores_as_it_was_validated(dataset, tmp_path, mode):
    """The saved model (probe: trained on cached pooled layers; lora: adapters merged) scores
    validation as training validated it: its thresholds, tuned on training's validation scores,
    are those of its own validation scores through the scoring path."""
    manifest, _, tiny = dataset
    summary = run_training(dataset, tmp_path, epochs=3, mode=mode, lr_backbone=1e-2, lr_head=1e-2)
    assert summary["settings"]["mode"] == mode
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    _, scores, _ = score_split(tmp_path / "model", manifest, "validation", batch_size=8, threads=1)
    validation = read_split(manifest, "validation")
    expected = dict(zip(TITLES, tune_thresholds(validation.targets, scores).tolist()))
    assert config["label_thresholds"] == pytest.approx(expected, abs=1e-5)
    log = pd.read_csv(tmp_path / "training_log.csv")
    assert log["train_loss"].iloc[-1] < log["train_loss"].iloc[0]

    saved, pretrained = (
        load_file(tmp_path / "model" / "model.safetensors"),
        load_file(tiny / "model.safetensors"),
    )
    assert not any("lora" in name for name in saved)  # loadable without peft
    attention = [n for n in pretrained if n.endswith("self_attn.linear_q.weight")]
    feed_forward = [n for n in pretrained if "ffn1.intermediate_dense.weight" in n]
    assert attention and feed_forward
    changed = {
        n: not torch.equal(saved[f"wav2vec2_bert.{n}"], pretrained[n]) for n in attention + feed_forward
    }
    # probe: the backbone is the pretrained one; lora: only the adapted projections moved.
    assert all(changed[n] == (mode == "lora") for n in attention)
    assert not any(changed[n] for n in feed_forward)


@pytest.mark.parametrize("mode", ["probe", "lora"])
def test_probe_and_lora_states_hold_only_the_trained_weights_and_resume(dataset, tmp_path, monkeypatch, mode):
    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "save_model", killed)
        with pytest.raises(RuntimeError, match="killed"):
            run_training(dataset, tmp_path, epochs=2, mode=mode)
    state = torch.load(tmp_path / "state" / resume.STATE_FILE, weights_only=True)
    trained = {name.removeprefix("base_model.model.").split(".")[0] for name in state["model"]}
    head = {"layer_weights", "projector", "classifier"}
    assert trained == (head if mode == "probe" else head | {"wav2vec2_bert"})
    if mode == "lora":
        assert all("lora_" in name for name in state["model"] if ".wav2vec2_bert." in name)
    summary = run_training(dataset, tmp_path, epochs=2, mode=mode)  # resumes: only the model is left to save
    assert summary["epochs_trained"] == 2 and (tmp_path / "model" / "model.safetensors").exists()


def test_the_probe_head_on_cached_layers_is_the_head_on_the_full_sequence(dataset, tmp_path):
    manifest, vocabulary, tiny = dataset
    model = load_classifier(tiny, TITLES).eval()  # any head: here a random one
    validation, window_frames = read_split(manifest, "validation"), 100
    tracks = dict(training=read_split(manifest, "training"), validation=validation)
    _, cached = open_probe_cache(
        write_cache(dataset, tmp_path / "cache"), manifest, tiny, window_frames, tracks
    )
    with torch.no_grad():
        from_cache = head_logits(model, cached.read(np.arange(len(cached))))
    full, window_tracks = window_logits(
        model, validation.paths, validation.n_frames, window_frames, 8, torch.device("cpu"), desc="scoring"
    )
    assert torch.equal(window_tracks, cached.window_tracks)
    torch.testing.assert_close(from_cache, full, atol=2e-3, rtol=1e-2)  # the cache is float16


def test_gradient_checkpointing_trains_the_same_model(dataset, trained, tmp_path):
    """Recomputing the activations in the backward pass (the same dropout masks: torch keeps the
    RNG state for it) changes the memory, not the training."""
    run_training(dataset, tmp_path, epochs=3, gradient_checkpointing=True)
    log = pd.read_csv(tmp_path / "training_log.csv")
    pd.testing.assert_frame_equal(
        without_timing(log), without_timing(trained[2]), check_exact=False, rtol=1e-5
    )


def test_compiled_training_trains_the_same_model(dataset, trained, tmp_path, monkeypatch):
    """`compile` runs training and validation through torch.compile's graphs, with the same
    result (SpecAugment's masks too). Traced here by TorchDynamo and AOT autograd without
    generating kernels (backend "aot_eager": seconds, where inductor's C++ build takes minutes on
    this CPU)."""
    compiled = []
    real_compile = torch.compile

    def compile_aot_eager(module, **options):
        compiled.append(module)
        return real_compile(module, **options | dict(backend="aot_eager"))

    monkeypatch.setattr(torch, "compile", compile_aot_eager)
    monkeypatch.setattr(torch._dynamo.config, "use_numpy_random_stream", False)  # put back afterwards
    torch._dynamo.reset()
    run_training(dataset, tmp_path, epochs=3, compile=True)
    assert len(compiled) == 1 and compiled[0].__class__.__name__ == "Wav2Vec2BertForSequenceClassification"
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # the forward passes ran as graphs
    log = pd.read_csv(tmp_path / "training_log.csv")
    pd.testing.assert_frame_equal(
        without_timing(log), without_timing(trained[2]), check_exact=False, rtol=1e-5
    )


def test_epochs_of_the_warm_up_do_not_count_towards_the_patience(tmp_path):
    run = SimpleNamespace(
        progress=Progress(),
        learning_rate=lambda part: 0.0,
        state_dir=tmp_path,
        processes=Processes(),
        settings=training_settings(epochs=4, warmup_fraction=0.5),
        model=torch.nn.Linear(2, 2),
        key={},
        best_validation_scores=None,
        keep_best=lambda: None,
    )
    scores = np.zeros((1, 1))
    for epoch, mAP in enumerate([0.9, 0.5, 0.6, 0.7], start=1):  # epochs 1 and 2 warm up
        run.progress.epoch_clips, run.progress.epoch_train_seconds = 1, 1.0
        metrics = {"mAP": mAP, "top_genre_accuracy": 0.0, "macro_f1": 0.0}
        validation_module.end_epoch(run, epoch, 1.0, metrics, scores, 0.0)
    # A lucky warm-up epoch stays the best, but only the two epochs after the warm-up count.
    assert run.progress.best_epoch == 1 and run.progress.epochs_without_improvement == 2


def test_resume_state_is_model_optimiser_and_little_else(dataset, tmp_path, monkeypatch):
    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(train_module, "save_model", killed)
    with pytest.raises(RuntimeError, match="killed"):
        run_training(dataset, tmp_path, epochs=1)
    state_path = tmp_path / "state" / resume.STATE_FILE
    state = torch.load(state_path, weights_only=True)
    assert set(state) == {
        "key",
        "model",
        "optimizer",
        "scheduler",
        "rng",
        "progress",
        "best_validation_scores",
    }
    model_bytes = sum(t.numel() * t.element_size() for t in state["model"].values())
    adam_bytes = sum(
        t.numel() * t.element_size() for s in state["optimizer"]["state"].values() for t in s.values()
    )
    assert state_path.stat().st_size <= 1.05 * (model_bytes + adam_bytes) + 200_000  # + pickle framing
    best = load_file(resume.best_path(tmp_path / "state", 1))
    assert best.keys() == state["model"].keys()
    assert [p.name for p in (tmp_path / "state").glob(resume.BEST_GLOB)] == ["best-epoch0001.safetensors"]


def test_a_crash_between_the_best_weights_and_the_state_keeps_the_states_best_loadable(dataset, tmp_path):
    """Epoch 2's weights are written as the new best, then the run dies before the state that
    names epoch 2: the state still names epoch 1, whose weights must still be there."""
    manifest, vocabulary, tiny = dataset
    state_dir = resume.prepare(tmp_path / "state")
    key = {"run": "test"}
    models = [load_classifier(tiny, TITLES) for _ in range(2)]
    torch.nn.init.zeros_(models[1].classifier.weight)
    resume.save_best(state_dir, resume.trained_weights(models[0]), key, 1)
    resume.keep_only_best(state_dir, 1)  # the state naming epoch 1 is written
    resume.save_best(state_dir, resume.trained_weights(models[1]), key, 2)  # ... and then the crash
    restored = resume.load_best(state_dir, key, 1)
    assert torch.equal(restored["classifier.weight"], models[0].state_dict()["classifier.weight"])
    resume.keep_only_best(state_dir, 2)  # once a state names epoch 2, epoch 1's go
    assert [p.name for p in state_dir.glob(resume.BEST_GLOB)] == ["best-epoch0002.safetensors"]
    with pytest.raises(RuntimeError, match="holds epoch 2 of run .* expected epoch 2 of run"):
        resume.load_best(state_dir, {"run": "another"}, 2)


def test_killed_run_continues_at_the_next_epoch(dataset, trained, tmp_path, monkeypatch):
    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    # Killed after two epochs: the state is saved, the model never written.
    with monkeypatch.context() as patch:
        patch.setattr(train_module, "save_model", killed)
        with pytest.raises(RuntimeError, match="killed"):
            run_training(dataset, tmp_path, epochs=3, patience=1)
    assert (tmp_path / "state" / resume.STATE_FILE).exists()
    first_part = pd.read_csv(tmp_path / "training_log.csv")
    # The same settings, the same results: the run is deterministic on CPU.
    pd.testing.assert_frame_equal(
        without_timing(first_part), without_timing(trained[2].iloc[: len(first_part)])
    )

    summary = run_training(dataset, tmp_path, epochs=3, patience=1)
    log = pd.read_csv(tmp_path / "training_log.csv")
    pd.testing.assert_frame_equal(log, first_part)  # nothing was left to do but save the model
    assert (tmp_path / "model" / "model.safetensors").exists() and summary["epochs_trained"] == len(log)
    assert load_classifier(tmp_path / "model").config.id2label == dict(enumerate(TITLES))


def test_sigterm_mid_epoch_saves_and_the_rerun_matches_an_uninterrupted_run(
    dataset, trained, tmp_path, monkeypatch
):
    with monkeypatch.context() as patch:
        crash_on_training_forward(patch, 2, lambda: os.kill(os.getpid(), signal.SIGTERM))
        with pytest.raises(TrainingInterrupted, match=r"step 2 \(epoch 1\)"):
            run_training(dataset, tmp_path, epochs=3)
    state = torch.load(tmp_path / "state" / resume.STATE_FILE, weights_only=True)
    assert (state["progress"]["epochs_done"], state["progress"]["batches_done"]) == (0, 2)
    assert not (tmp_path / "model").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed again

    summary = run_training(dataset, tmp_path, epochs=3)
    log = pd.read_csv(tmp_path / "training_log.csv")
    pd.testing.assert_frame_equal(without_timing(log), without_timing(trained[2]))
    assert summary["best_epoch"] == trained[1]["best_epoch"]


def test_sigterm_in_validation_resumes_with_that_validation(dataset, trained, tmp_path, monkeypatch):
    real_window_logits = validation_module.window_logits

    def sigterm_then_validate(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_window_logits(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(validation_module, "window_logits", sigterm_then_validate)
        with pytest.raises(TrainingInterrupted, match="validation of epoch 1"):
            run_training(dataset, tmp_path, epochs=3)
    state = torch.load(tmp_path / "state" / resume.STATE_FILE, weights_only=True)
    assert (state["progress"]["epochs_done"], state["progress"]["batches_done"]) == (0, 3)
    run_training(dataset, tmp_path, epochs=3)
    log = pd.read_csv(tmp_path / "training_log.csv")
    pd.testing.assert_frame_equal(without_timing(log), without_timing(trained[2]))


def test_periodic_checkpoints_carry_a_hard_crash_mid_epoch(dataset, trained, tmp_path, monkeypatch, caplog):
    """No signal: the run dies at the 5th training step (epoch 2) and resumes from the checkpoint
    written after the 4th; a temporary that a killed writer left is removed, never loaded."""

    def crash():
        raise RuntimeError("node failure")

    with monkeypatch.context() as patch:
        crash_on_training_forward(patch, 5, crash)
        with pytest.raises(RuntimeError, match="node failure"):
            run_training(dataset, tmp_path, epochs=3, checkpoint_minutes=1e-9)  # after every step
    state = torch.load(tmp_path / "state" / resume.STATE_FILE, weights_only=True)
    assert (state["progress"]["epochs_done"], state["progress"]["batches_done"]) == (1, 1)
    leftover = tmp_path / "state" / f".{resume.STATE_FILE}.abc123.tmp"
    leftover.write_bytes(b"half a checkpoint")

    with caplog.at_level(logging.INFO):
        run_training(dataset, tmp_path, epochs=3)
    assert not leftover.exists() and f"removed {leftover}" in caplog.text
    assert "resuming: 1 epochs and 1 batches of the next done" in caplog.text
    log = pd.read_csv(tmp_path / "training_log.csv")
    pd.testing.assert_frame_equal(without_timing(log), without_timing(trained[2]))


def test_a_state_from_other_settings_or_features_is_ignored_saying_why(
    dataset, trained, tmp_path, monkeypatch, caplog
):
    manifest, _, _ = dataset

    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "save_model", killed)
        with pytest.raises(RuntimeError):
            run_training(dataset, tmp_path, epochs=3)

    # Recomputed features: same paths and frame counts, another content digest for one track.
    table = pd.read_csv(manifest, keep_default_na=False)
    table.loc[0, "sha1"] = "0" * 40
    changed = tmp_path / "manifest.csv"
    table.to_csv(changed, index=False)
    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING):
        patch.setattr(train_module, "save_model", killed)
        with pytest.raises(RuntimeError):
            run_training(dataset, tmp_path, epochs=3, manifest=changed)
    assert re.search(r"ignoring .*state\.pt, made by a run that differs in manifest_sha1", caplog.text)

    # More epochs: the cosine schedule would differ, so the run restarts, and says so.
    caplog.clear()
    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING):
        patch.setattr(train_module, "save_model", killed)
        with pytest.raises(RuntimeError):
            run_training(dataset, tmp_path, epochs=4, manifest=changed)
    assert "differs in epochs: 3 then, 4 now" in caplog.text
    assert len(pd.read_csv(tmp_path / "training_log.csv")) == 4

    # A state this code cannot read (another version's, or damaged) is not resumed either.
    (tmp_path / "state" / resume.STATE_FILE).write_bytes(b"not a checkpoint")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        run_training(dataset, tmp_path, epochs=4, manifest=changed)
    assert re.search(r"ignoring .*state\.pt, which cannot be read", caplog.text)
    assert len(pd.read_csv(tmp_path / "training_log.csv")) == 4


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
            tmp_path / "tensorboard",
            training_settings(epochs=1, **(SETTINGS | dict(batch_size=12))),
            threads=THREADS,
        )


def test_score_split_gives_probabilities_for_the_split(dataset, trained):
    manifest, _, _ = dataset
    track_ids, scores, excluded = score_split(trained[0] / "model", manifest, "test", batch_size=4, threads=1)
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


@pytest.mark.filterwarnings("ignore:.*pin_memory.*:UserWarning")
def test_loader_workers_outlive_the_sigterm_the_training_answers(dataset):
    """On a GPU the loader has worker processes, and SLURM's SIGTERM reaches them too: they must
    go on serving batches while the training finishes its step and writes its checkpoint."""
    manifest, _, _ = dataset
    tracks = read_split(manifest, "training")
    windows = [(t, 0, 100) for t in range(len(tracks.paths))]
    # The loader as it is built for CUDA, with one worker process.
    loader = WindowLoader(tracks.paths, torch.device("cuda"), workers=1)
    batches = loader.batches(windows, 2)
    first = next(batches)
    [worker] = batches._workers
    os.kill(worker.pid, signal.SIGTERM)
    rest = list(batches)
    assert len(first[0]) + sum(len(features) for features, _, _ in rest) == len(windows)
    # The worker lives as long as the loader (the next epoch's batches need no new one) ...
    again = list(loader.batches(windows[:3], 2))
    assert [len(features) for features, _, _ in again] == [2, 1] and batches._workers == [worker]
    del loader, batches
    gc.collect()
    worker.join(timeout=30)
    assert not worker.is_alive()  # ... and stops with it
