"""The probe cache (rule probe_cache): the frozen backbone's pooled layers of every window, on
disk in float16 shards, written by any number of processes and read back a batch at a time."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fma_genre.features.crops import evaluation_windows, frames_of
from fma_genre.features.loader import LogMelWindows, collate
from fma_genre.features.splits import read_split
from fma_genre.models.classifier import load_classifier
from fma_genre.runtime.processes import launch
from fma_genre.training import probe_cache
from fma_genre.training.probe import pooled_layers
from fma_genre.training.probe_cache import ProbeCacheMismatch, open_probe_cache, write_probe_cache

from unit.test_distributed import TESTS, assert_same_training, training_arguments
from unit.test_train import SETTINGS, THREADS

WINDOW_SECONDS = SETTINGS["crop_seconds"]
SHARD_WINDOWS = 4  # several shards per split and process on the tiny dataset

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def cache_arguments(dataset, folder: Path) -> dict:
    manifest, _, tiny = dataset
    return dict(
        manifest_csv=str(manifest),
        pretrained_dir=str(tiny),
        cache_dir=str(folder),
        window_seconds=WINDOW_SECONDS,
        batch_size=3,
        threads=THREADS,
    )


@pytest.fixture(scope="module")
def one_process_cache(dataset, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cache") / "one"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(probe_cache, "SHARD_WINDOWS", SHARD_WINDOWS)
        write_probe_cache(**cache_arguments(dataset, folder))
    return folder


def split_tracks(manifest) -> dict:
    return {split: read_split(manifest, split) for split in probe_cache.SPLITS}


def open_cache(dataset, folder: Path, window_seconds: float = WINDOW_SECONDS):
    manifest, _, tiny = dataset
    return open_probe_cache(folder, manifest, tiny, frames_of(window_seconds), split_tracks(manifest))


def test_probe_cache_holds_float16_shards_that_read_back_every_windows_pooled_layers(
    dataset, one_process_cache
):
    manifest, _, tiny = dataset
    index = json.loads((one_process_cache / probe_cache.INDEX_FILE).read_text())
    training = index["splits"]["training"]
    # 12 tracks of 3 s, 3 windows of 1 s each: 36 windows in shards of 4.
    assert training["tracks"] == 12 and training["windows"] == 36
    assert [windows for _, windows in training["shards"]] == [SHARD_WINDOWS] * 9
    shard = np.load(one_process_cache / training["shards"][0][0], mmap_mode="r")
    assert shard.dtype == np.float16 and shard.shape == (SHARD_WINDOWS, index["layers"], index["hidden"])

    cached, _ = open_cache(dataset, one_process_cache)
    model = load_classifier(tiny, ["unused"]).eval()
    tracks = read_split(manifest, "training")
    windows = evaluation_windows(tracks.n_frames, frames_of(WINDOW_SECONDS))
    chosen = np.array([35, 0, 17, 4, 3, 22])  # out of order, across shards
    features, mask, _ = collate([LogMelWindows(tracks.paths)[windows[i]] for i in chosen])
    with torch.no_grad():
        expected = pooled_layers(model, features, mask)
    torch.testing.assert_close(cached.read(chosen), expected, atol=2e-3, rtol=1e-2)  # float16
    assert cached.window_tracks[chosen].tolist() == [windows[i][0] for i in chosen]


def test_probe_cache_of_other_features_or_windows_is_refused_naming_what_differs(
    dataset, one_process_cache, tmp_path
):
    with pytest.raises(ProbeCacheMismatch, match=r"window_frames: 100, expected 50"):
        open_cache(dataset, one_process_cache, window_seconds=0.5)
    manifest, _, tiny = dataset
    fewer = pd.read_csv(manifest)
    fewer = fewer.drop(fewer.index[fewer["split"] == "training"][:1])
    fewer.to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(ProbeCacheMismatch) as refused:
        open_probe_cache(
            one_process_cache, tmp_path / "manifest.csv", tiny, 100, split_tracks(tmp_path / "manifest.csv")
        )
    assert "manifest_sha1" in str(refused.value) and "training tracks: 12, expected 11" in str(refused.value)
    assert str(one_process_cache) in str(refused.value) and "rebuild it" in str(refused.value)


def test_probe_cache_written_by_two_processes_is_the_one_process_cache(
    dataset, one_process_cache, tmp_path, monkeypatch
):
    """Each process writes the shards of its windows; read back, the same values in the same order."""
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    launch(
        "unit.launched_training:write_probe_cache_in_shards",
        cache_arguments(dataset, tmp_path / "two") | dict(shard_windows=SHARD_WINDOWS),
        2,
        tmp_path / "cache.log",
    )
    index = json.loads((tmp_path / "two" / probe_cache.INDEX_FILE).read_text())
    names = [name for name, _ in index["splits"]["training"]["shards"]]
    assert {name.split("-")[1] for name in names} == {"00", "01"}
    for one, two in zip(open_cache(dataset, one_process_cache), open_cache(dataset, tmp_path / "two")):
        everything = np.arange(len(one))
        assert len(two) == len(one) and torch.equal(two.window_tracks, one.window_tracks)
        torch.testing.assert_close(two.read(everything), one.read(everything), atol=1e-3, rtol=1e-3)


def test_a_probe_trained_from_the_probe_cache_in_two_processes_trains_like_one(
    dataset, one_process_cache, tmp_path
):
    probe = dict(mode="probe", micro_batch_size=2)
    runs = {}
    for processes in (1, 2):
        out = tmp_path / str(processes)
        out.mkdir()
        arguments = training_arguments(dataset, out) | dict(probe_cache_dir=str(one_process_cache))
        arguments["settings"] = dataclasses.replace(arguments["settings"], **probe)
        launch("fma_genre.training.loop:train", arguments, processes, out / "train.log")
        runs[processes] = out
    assert "x 2 processes" in (runs[2] / "train.log").read_text()
    assert_same_training(runs[2], runs[1])
