"""The demo generator writes archives packed like the real FMA ones, deterministically, with
learnable genres and FMA's kinds of broken clips."""

import ast
import hashlib
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fma_genre.demo.archives import main, write_demo_archives
from fma_genre.demo.catalogue import build_catalogue, split_artists
from fma_genre.demo.instruments import SAMPLE_RATE

from real_format import TRACKS_COLUMNS as REAL_COLUMNS  # as listed in ../shared/fma-samples/README.md

TRACKS_PER_GENRE = 6
CLIP_SECONDS = 3.0
SMALL_GENRES = {
    21: "Hip-Hop",
    10: "Pop",
    17: "Folk",
    38: "Experimental",
    12: "Rock",
    2: "International",
    15: "Electronic",
    1235: "Instrumental",
}


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def parse_checksums(text: str) -> dict[str, str]:
    lines = text.splitlines()
    assert all(re.fullmatch(r"[0-9a-f]{40}  \S+", line) for line in lines), lines[:3]
    return {line[42:]: line[:40] for line in lines}


def read_tracks(archive_dir: Path) -> pd.DataFrame:
    with zipfile.ZipFile(archive_dir / "fma_metadata.zip") as archive:
        return pd.read_csv(io.BytesIO(archive.read("fma_metadata/tracks.csv")), index_col=0, header=[0, 1])


def decode_clips(archive_dir: Path) -> dict[int, bytes]:
    with zipfile.ZipFile(archive_dir / "fma_small.zip") as archive:
        return {
            int(Path(name).stem): archive.read(name) for name in archive.namelist() if name.endswith(".mp3")
        }


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("demo")
    write_demo_archives(out_dir, tracks_per_genre=TRACKS_PER_GENRE, seed=0, clip_seconds=CLIP_SECONDS)
    return out_dir


@pytest.fixture(scope="module")
def real_genres(real_genres_csv) -> pd.DataFrame:
    return pd.read_csv(real_genres_csv, index_col="genre_id")


def test_both_archives_are_bzip2_zips_laid_out_like_fma(demo_dir):
    tracks = read_tracks(demo_dir)
    small_ids = set(tracks.index[tracks[("set", "subset")] == "small"])
    with (
        zipfile.ZipFile(demo_dir / "fma_metadata.zip") as metadata,
        zipfile.ZipFile(demo_dir / "fma_small.zip") as audio,
    ):
        assert sorted(metadata.namelist()) == [
            f"fma_metadata/{name}" for name in ("README.txt", "checksums", "genres.csv", "tracks.csv")
        ]
        audio_names = audio.namelist()
        infos = metadata.infolist() + audio.infolist()
    assert {info.compress_type for info in infos} == {zipfile.ZIP_BZIP2}
    assert {info.date_time for info in infos} == {(2017, 4, 1, 0, 0, 0)}
    assert {"fma_small/README.txt", "fma_small/checksums"} <= set(audio_names)
    mp3_names = sorted(set(audio_names) - {"fma_small/README.txt", "fma_small/checksums"})
    assert mp3_names == sorted(f"fma_small/{i // 1000:03d}/{i:06d}.mp3" for i in small_ids)
    assert all(re.fullmatch(r"fma_small/(\d{3})/\1\d{3}\.mp3", name) for name in mp3_names)
    assert len({name.split("/")[1] for name in mp3_names}) >= 3  # spread over several NNN folders


def test_every_checksums_line_matches_its_member(demo_dir):
    for root in ("fma_metadata", "fma_small"):
        with zipfile.ZipFile(demo_dir / f"{root}.zip") as archive:
            listed = parse_checksums(archive.read(f"{root}/checksums").decode())
            members = {name.removeprefix(f"{root}/"): archive.read(name) for name in archive.namelist()}
        # Like the real archives: every data file is listed, README.txt and checksums are not.
        assert set(listed) == set(members) - {"README.txt", "checksums"}
        assert listed == {name: sha1(data) for name, data in members.items() if name in listed}
    assert set(parse_checksums((demo_dir / "SHA1SUMS").read_text())) == {"fma_metadata.zip", "fma_small.zip"}


def test_genres_csv_is_the_real_file(demo_dir, real_genres_csv):
    with zipfile.ZipFile(demo_dir / "fma_metadata.zip") as archive:
        shipped = archive.read("fma_metadata/genres.csv")
    assert shipped == real_genres_csv.read_bytes()
    assert sha1(shipped) == "d2f3a75be03441d324ef9815d23bad33d149c831"


def test_tracks_csv_has_the_real_layout_and_subsets(demo_dir):
    with zipfile.ZipFile(demo_dir / "fma_metadata.zip") as archive:
        raw_lines = archive.read("fma_metadata/tracks.csv").decode().splitlines()
    assert raw_lines[0].startswith(",album,album,")
    assert raw_lines[1].startswith(",comments,date_created,date_released,")
    assert raw_lines[2] == "track_id" + "," * 52
    tracks = read_tracks(demo_dir)
    assert tracks.index.name == "track_id"
    assert list(tracks.columns) == REAL_COLUMNS
    assert tracks.index.is_unique and tracks.index.min() >= 2
    assert tracks.notna().any().all()  # every column holds values
    subset = tracks[("set", "subset")]
    assert (subset == "small").sum() == 8 * TRACKS_PER_GENRE
    assert set(subset[subset != "small"]) <= {"medium", "large"} and (subset != "small").sum() == 6
    small = tracks[subset == "small"]
    assert small[("track", "genre_top")].value_counts().to_dict() == dict.fromkeys(
        SMALL_GENRES.values(), TRACKS_PER_GENRE
    )
    assert (
        small[("track", "duration")].dtype == np.int64
        and small[("track", "duration")].between(30, 1000).all()
    )
    assert set(small[("track", "bit_rate")]) <= {128000, 192000, 256000, 320000}


def test_genres_all_adds_every_ancestor(demo_dir, real_genres):
    tracks = read_tracks(demo_dir)
    parent = real_genres["parent"].to_dict()
    for genres_text, genres_all_text, genre_top in zip(
        tracks[("track", "genres")], tracks[("track", "genres_all")], tracks[("track", "genre_top")]
    ):
        genres = ast.literal_eval(genres_text)
        expected = set()
        for genre in genres:
            while genre != 0:
                expected.add(genre)
                genre = parent[genre]
        assert sorted(ast.literal_eval(genres_all_text)) == sorted(expected)
        top_levels = {real_genres.at[g, "top_level"] for g in genres}
        if len(top_levels) == 1:
            assert genre_top == real_genres.at[top_levels.pop(), "title"]
        else:
            assert pd.isna(genre_top)
    small = tracks[tracks[("set", "subset")] == "small"]
    assert {
        int(real_genres.at[ast.literal_eval(g)[0], "top_level"]) for g in small[("track", "genres")]
    } == set(SMALL_GENRES)
    assert any(len(ast.literal_eval(g)) > 1 for g in small[("track", "genres")])  # some carry a sub-genre
    assert "[10, 17, 76, 103]" in set(tracks[("track", "genres_all")])  # the track-20-like one


def test_splits_are_artist_filtered_about_80_10_10():
    tracks = build_catalogue(24, seed=0, clip_seconds=30.0).tracks
    small = tracks[tracks[("set", "subset")] == "small"]
    splits_per_artist = small[("set", "split")].groupby(small[("artist", "id")]).nunique()
    assert (splits_per_artist == 1).all()
    for genre in SMALL_GENRES.values():
        of_genre = small[small[("track", "genre_top")] == genre]
        assert of_genre[("set", "split")].value_counts().to_dict() == {
            "training": 16,
            "validation": 4,
            "test": 4,
        }
        artists = of_genre[("artist", "id")].groupby(of_genre[("set", "split")]).nunique().to_dict()
        assert artists == {"training": 4, "validation": 1, "test": 1}
    assert split_artists(3) == ["training", "validation", "test"]
    assert split_artists(25).count("training") == 21 and split_artists(25).count("test") == 2


def test_three_clips_are_broken_like_fma_and_the_others_decode(demo_dir):
    tracks = read_tracks(demo_dir)
    empty, short, undecodable = [], [], []
    for track_id, data in decode_clips(demo_dir).items():
        if not data:
            empty.append(track_id)
            continue
        try:
            samples, sample_rate = sf.read(io.BytesIO(data), dtype="float32")
        except sf.LibsndfileError:
            undecodable.append(track_id)
            continue
        assert sample_rate == SAMPLE_RATE and samples.ndim == 1  # mono
        if len(samples) == 2 * SAMPLE_RATE:
            short.append(track_id)
        else:
            assert len(samples) == CLIP_SECONDS * SAMPLE_RATE
            assert 0.05 < np.abs(samples).max() < 1.0
    assert len(empty) == len(short) == len(undecodable) == 1
    broken = tracks.loc[empty + short + undecodable]
    assert (broken[("set", "split")] == "training").all()
    assert broken[("track", "genre_top")].nunique() == 3


def test_same_seed_same_bytes_whatever_the_workers(tmp_path, capsys):
    first = write_demo_archives(tmp_path / "a", tracks_per_genre=3, seed=0, clip_seconds=2.5, workers=1)
    main(
        [
            str(tmp_path / "b"),
            "--tracks-per-genre",
            "3",
            "--seed",
            "0",
            "--clip-seconds",
            "2.5",
            "--workers",
            "2",
        ]
    )
    other_seed = write_demo_archives(tmp_path / "c", tracks_per_genre=3, seed=1, clip_seconds=2.5)
    for name, digest in first.items():
        assert sha1((tmp_path / "a" / name).read_bytes()) == digest
        assert sha1((tmp_path / "b" / name).read_bytes()) == digest
        assert other_seed[name] != digest
    assert (
        (tmp_path / "a" / "SHA1SUMS").read_text() == f"{first['fma_metadata.zip']}  fma_metadata.zip\n"
        f"{first['fma_small.zip']}  fma_small.zip\n"
    )
    assert f"{first['fma_small.zip']}  {tmp_path / 'b' / 'fma_small.zip'}" in capsys.readouterr().out


def log_band_energy_stats(samples: np.ndarray) -> np.ndarray:
    """Mean and spread over time of the log energies of 40 log-spaced bands, gain removed: a
    deliberately trivial feature that sees timbre and loudness swings but no rhythm or melody."""
    frames = np.lib.stride_tricks.sliding_window_view(samples, 2048)[::1024] * np.hanning(2048)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(2048, 1 / SAMPLE_RATE)
    edges = np.geomspace(30, 10000, 41)
    bands = np.stack(
        [power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) for lo, hi in zip(edges[:-1], edges[1:])], axis=1
    )
    log_bands = np.log(bands + 1e-10)
    log_bands -= log_bands.mean()
    return np.concatenate([log_bands.mean(axis=0), log_bands.std(axis=0)])


def test_genres_are_learnable_from_a_trivial_spectral_feature(tmp_path):
    write_demo_archives(tmp_path, tracks_per_genre=20, seed=0, clip_seconds=5.0, workers=2)
    tracks = read_tracks(tmp_path)
    features, genres, splits = [], [], []
    for track_id, data in decode_clips(tmp_path).items():
        try:
            samples, _ = sf.read(io.BytesIO(data), dtype="float32")
        except sf.LibsndfileError:
            continue
        if len(samples) < 3 * SAMPLE_RATE:
            continue
        features.append(log_band_energy_stats(samples))
        genres.append(tracks.at[track_id, ("track", "genre_top")])
        splits.append(tracks.at[track_id, ("set", "split")])
    features, genres, splits = np.array(features), np.array(genres), np.array(splits)
    # Held out: the validation and test artists (two per genre), never seen in training.
    training, held_out = splits == "training", splits != "training"
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(
        features[training], genres[training]
    )
    accuracy = model.score(features[held_out], genres[held_out])
    assert held_out.sum() == 64
    assert 0.8 <= accuracy < 1.0, accuracy  # learnable, yet genres overlap
