"""The subset table from tracks.csv in the real FMA format."""

import pandas as pd
import pytest

from fma_genre.data.metadata import MetadataError, read_genres, read_tracks, write_subset_csv

from real_format import TRACKS_COLUMNS, write_tracks_csv


def test_example_file_is_in_the_real_layout(tmp_path):
    path = write_tracks_csv(tmp_path / "tracks.csv")
    lines = path.read_text().splitlines()
    assert lines[0].startswith(",album,album") and lines[2].startswith("track_id")
    # FMA's own loader reads it back: 52 columns under the real two-level header.
    tracks = pd.read_csv(path, index_col=0, header=[0, 1])
    assert len(TRACKS_COLUMNS) == 52 and list(tracks.columns) == TRACKS_COLUMNS


def test_subset_small_keeps_only_small_tracks_with_paths_and_genres(tmp_path):
    tracks = write_tracks_csv(tmp_path / "tracks.csv")
    out = tmp_path / "small_subset.csv"
    n = write_subset_csv(tracks, "small", "data/raw/fma_small", out)
    table = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert n == 6 and list(table["track_id"]) == ["2", "5", "10", "140", "141", "1482"]
    row = table.set_index("track_id").loc["2"]
    assert row["split"] == "training" and row["genre_top"] == "Hip-Hop"
    assert row["genres_all"] == "21" and row["audio_path"] == "data/raw/fma_small/000/000002.mp3"
    assert float(row["duration"]) == 168
    assert table.set_index("track_id").loc["1482", "audio_path"] == "data/raw/fma_small/001/001482.mp3"


def test_subsets_nest(tmp_path):
    tracks = write_tracks_csv(tmp_path / "tracks.csv")
    assert write_subset_csv(tracks, "medium", "a", tmp_path / "m.csv") == 7
    assert write_subset_csv(tracks, "large", "a", tmp_path / "l.csv") == 8
    medium = pd.read_csv(tmp_path / "m.csv", dtype=str).set_index("track_id")
    assert medium.loc["20", "genres_all"] == "17 10 76 103"


def test_missing_column_stops_naming_file_and_column(tmp_path):
    tracks = write_tracks_csv(tmp_path / "tracks.csv", drop=[("track", "genres_all")])
    out = tmp_path / "s.csv"
    with pytest.raises(
        MetadataError, match=r"tracks\.csv: missing column\(s\) \('track', 'genres_all'\).*found 51 columns"
    ):
        write_subset_csv(tracks, "small", "a", out)
    assert not out.exists()


def test_malformed_genre_list_names_track_and_column(tmp_path):
    rows = [(2, "training", "small", "Hip-Hop", "[21", "[21]", 168)]
    tracks = write_tracks_csv(tmp_path / "tracks.csv", rows=rows)
    with pytest.raises(MetadataError, match=r"track 2: column \('track', 'genres'\).*'\[21'"):
        write_subset_csv(tracks, "small", "a", tmp_path / "s.csv")


def test_bad_split_value_is_reported(tmp_path):
    rows = [(2, "train", "small", "Hip-Hop", "[21]", "[21]", 168)]
    tracks = write_tracks_csv(tmp_path / "tracks.csv", rows=rows)
    with pytest.raises(MetadataError, match=r"track 2: column \('set', 'split'\).*'train'"):
        write_subset_csv(tracks, "small", "a", tmp_path / "s.csv")


def test_not_a_tracks_csv(tmp_path):
    path = tmp_path / "tracks.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(MetadataError, match="third header line"):
        read_tracks(path)


def test_real_genres_hierarchy(real_genres_csv):
    genres = read_genres(real_genres_csv)
    assert len(genres) == 163
    assert genres.loc[21, "title"] == "Hip-Hop" and genres.loc[21, "parent"] == 0
    assert genres.loc[76, "parent"] == 10 and genres.loc[103, "top_level"] == 17
    assert genres.loc[25, "title"] == "Punk" and genres.loc[25, "parent"] == 12
    roots = set(genres.index[genres["parent"] == 0])
    assert {2, 10, 12, 15, 17, 21, 38, 1235} <= roots and len(roots) == 16
