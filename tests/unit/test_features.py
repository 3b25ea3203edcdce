"""The feature stage over one shard: saved frames, skipped clips and the status table."""

import csv
import errno
import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
from test_audio import write_sine_mp3

from fma_genre.features.audio import decode_mono_16k
from fma_genre.features.logmel import centre_for_float16, kaldi_log_mel
from fma_genre.features.shard import LEVEL_COLUMNS, FeatureWriteError, extract_shard


def write_csv(path, header, rows) -> None:
    with open(path, "w", newline="") as csv_file:
        writer = csv.writer(csv_file)
        writer.writerow(header)
        writer.writerows(rows)


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as csv_file:
        return list(csv.DictReader(csv_file))


@pytest.fixture
def shard_workdir(tmp_path, monkeypatch, real_clip):
    """A working directory with a subset table over good, empty, undecodable, short and missing
    clips of shard 000, plus a track of shard 001 that must be left alone."""
    monkeypatch.chdir(tmp_path)
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    (audio_dir / "empty.mp3").write_bytes(b"")
    (audio_dir / "noise.mp3").write_bytes(np.random.default_rng(0).bytes(4096))
    write_sine_mp3(audio_dir / "short.mp3", seconds=2.0)
    write_csv(
        "subset.csv",
        ["track_id", "genre_top", "audio_path"],
        [
            [20, "Pop", "audio/short.mp3"],
            [2, "Hip-Hop", str(real_clip)],
            [1234, "Rock", str(real_clip)],  # shard 001
            [5, "Rock", "audio/empty.mp3"],
            [30, "Folk", "audio/missing.mp3"],
            [10, "Rock", "audio/noise.mp3"],
        ],
    )
    return tmp_path


def test_shard_saves_good_clips_and_records_why_others_were_skipped(shard_workdir, real_clip, caplog):
    with caplog.at_level(logging.INFO, logger="fma_genre.features.shard"):
        extract_shard("subset.csv", "000", "features", "status/000.csv", min_clip_seconds=5.0, threads=2)

    waveform = decode_mono_16k(real_clip)
    n_frames = 1 + (len(waveform) - 400) // 160
    status = read_csv(shard_workdir / "status" / "000.csv")
    assert list(status[0]) == ["track_id", "path", "n_frames", "sha1", "status", *LEVEL_COLUMNS]
    assert len(LEVEL_COLUMNS) == 80 and LEVEL_COLUMNS[0] == "level_00"
    assert [row["track_id"] for row in status] == ["2", "5", "10", "20", "30"]
    good, empty, noise, short, missing = status
    npy_bytes = (shard_workdir / "features" / "000002.npy").read_bytes()
    assert {k: good[k] for k in ("track_id", "path", "n_frames", "sha1", "status")} == {
        "track_id": "2",
        "path": "features/000002.npy",
        "n_frames": str(n_frames),
        "sha1": hashlib.sha1(npy_bytes).hexdigest(),
        "status": "ok",
    }
    assert {k: empty[k] for k in ("track_id", "path", "n_frames", "sha1", "status")} == {
        "track_id": "5",
        "path": "",
        "n_frames": "",
        "sha1": "",
        "status": "empty file",
    }
    assert all(empty[c] == "" for c in LEVEL_COLUMNS)
    assert noise["status"].startswith("undecodable: ")
    assert short["status"] == "too short: 2.0 s < 5.0 s"
    assert missing["status"].startswith("error: FileNotFoundError: ")
    assert {row["path"] for row in (noise, short, missing)} == {""}

    # only the good clip has frames, and nothing temporary is left behind
    assert sorted(p.name for p in (shard_workdir / "features").iterdir()) == ["000002.npy"]
    assert sorted(p.name for p in (shard_workdir / "status").iterdir()) == ["000.csv"]
    saved = np.load(shard_workdir / "features" / "000002.npy")
    assert saved.dtype == np.float16
    assert saved.shape == (n_frames, 80)
    # within one float16 step: the stage runs BLAS on one thread, which may round differently
    expected, levels = centre_for_float16(kaldi_log_mel(waveform))
    np.testing.assert_allclose(saved.astype(np.float32), expected.astype(np.float32), rtol=1e-3, atol=1e-4)
    # the per-bin levels the stored frames lack, to 5 significant digits
    np.testing.assert_allclose([float(good[c]) for c in LEVEL_COLUMNS], levels, rtol=1e-4)

    assert "shard 000: 1 of 5 tracks ok" in caplog.text
    assert "'too short': 1" in caplog.text
    assert "'error': 1" in caplog.text


def test_a_shard_takes_only_its_own_tracks(shard_workdir):
    extract_shard("subset.csv", "001", "features", "status/001.csv", min_clip_seconds=5.0, threads=1)
    assert [row["track_id"] for row in read_csv("status/001.csv")] == ["1234"]
    assert [p.name for p in (shard_workdir / "features").iterdir()] == ["001234.npy"]


def test_a_shard_without_tracks_still_makes_its_outputs(shard_workdir):
    extract_shard("subset.csv", "099", "features_099", "status/099.csv", min_clip_seconds=5.0, threads=1)
    assert read_csv("status/099.csv") == []
    header = (shard_workdir / "status" / "099.csv").read_text().strip()
    assert header == ",".join(["track_id", "path", "n_frames", "sha1", "status", *LEVEL_COLUMNS])
    assert list((shard_workdir / "features_099").iterdir()) == []


def test_a_full_disk_stops_the_shard_naming_the_file_and_a_rerun_finishes_it(shard_workdir, monkeypatch):
    """ENOSPC while a feature file is written: not a bad clip to record but a failed job, with
    no status table (nothing of the shard counts as done) and no partial file; the rerun works."""
    real_write_bytes = Path.write_bytes

    def full_disk(path, data):
        if path.name.startswith(".000002.npy"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_bytes(path, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(
        FeatureWriteError, match=r"features/000002\.npy: cannot write the features \(No space left"
    ):
        extract_shard("subset.csv", "000", "features", "status/000.csv", min_clip_seconds=5.0, threads=2)
    assert not (shard_workdir / "status" / "000.csv").exists()
    assert not list((shard_workdir / "features").glob(".*"))  # no temporary file left
    monkeypatch.setattr(Path, "write_bytes", real_write_bytes)
    extract_shard("subset.csv", "000", "features", "status/000.csv", min_clip_seconds=5.0, threads=2)
    status = {row["track_id"]: row["status"] for row in read_csv(shard_workdir / "status" / "000.csv")}
    assert status["2"] == "ok" and (shard_workdir / "features" / "000002.npy").exists()
