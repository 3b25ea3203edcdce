"""Multi-hot labels from genre ids over the real genres.csv hierarchy."""

import pandas as pd
import pytest

from fma_genre.data.labels import write_multihot
from fma_genre.data.metadata import MetadataError, read_genres, write_subset_csv
from fma_genre.data.vocabulary import Vocabulary, top_genre_ids

from real_format import write_tracks_csv

# 3 Hip-Hop, 2 Folk (one also Singer-Songwriter 103), 1 Rock/Punk, 1 Pop/Experimental Pop
# without genre_top; test/validation tracks must not count towards the vocabulary.
ROWS = [
    (2, "training", "small", "Hip-Hop", "[21]", "[21]", 168),
    (3, "training", "small", "Hip-Hop", "[21]", "[21]", 168),
    (4, "training", "small", "Hip-Hop", "[21]", "[21]", 168),
    (140, "training", "small", "Folk", "[17]", "[17]", 253),
    (141, "training", "small", "Folk", "[17, 103]", "[17, 103]", 182),
    (1482, "training", "small", "Rock", "[12, 25]", "[12, 25]", 92),
    (20, "training", "small", "", "[76, 103]", "[17, 10, 76, 103]", 311),
    (5, "test", "small", "Hip-Hop", "[21]", "[21]", 206),
    (6, "test", "small", "Folk", "[103]", "[17, 103]", 206),
]


@pytest.fixture
def subset_csv(tmp_path):
    tracks = write_tracks_csv(tmp_path / "tracks.csv", rows=ROWS)
    write_subset_csv(tracks, "small", "data/raw/fma_small", tmp_path / "small_subset.csv")
    return tmp_path / "small_subset.csv"


def test_vocabulary_keeps_frequent_genres_and_all_top_genres(tmp_path, subset_csv, real_genres_csv):
    multihot, vocab = tmp_path / "multihot.csv", tmp_path / "unified_genres.txt"
    vocabulary = write_multihot(subset_csv, real_genres_csv, 2, multihot, vocab)
    # Top genres (with a genre_top in the subset) first, by id, then the others by id.
    assert [(g.genre_id, g.title, g.top_level) for g in vocabulary] == [
        (12, "Rock", True),
        (17, "Folk", True),
        (21, "Hip-Hop", True),
        (103, "Singer-Songwriter", False),
    ]
    # Rock has 1 training track (< 2) but is a top genre; Pop (10) and Experimental Pop (76)
    # have 1 (track 20) and are no top genre here: dropped; Singer-Songwriter has 2: kept.
    assert {g.genre_id: g.n_training_tracks for g in vocabulary} == {12: 1, 17: 3, 21: 3, 103: 2}
    assert Vocabulary.read(vocab) == vocabulary
    table = pd.read_csv(multihot).set_index("track_id")
    assert list(table.columns) == ["split", "genre_top", "label_12", "label_17", "label_21", "label_103"]
    assert table.loc[20, ["label_12", "label_17", "label_21", "label_103"]].tolist() == [0, 1, 0, 1]
    assert table.loc[6, ["label_17", "label_103"]].tolist() == [1, 1]
    assert table.loc[2, ["label_12", "label_17", "label_21", "label_103"]].tolist() == [0, 0, 1, 0]


def test_top_genre_ids_come_from_the_hierarchy(real_genres_csv):
    genres = read_genres(real_genres_csv)
    assert top_genre_ids([[21], [12, 25], [17, 10, 76, 103], []], genres) == [21, 12, None, None]


def test_unknown_genre_id_stops(tmp_path, real_genres_csv):
    rows = [(2, "training", "small", "Hip-Hop", "[21]", "[21, 99999]", 168)]
    tracks = write_tracks_csv(tmp_path / "tracks.csv", rows=rows)
    write_subset_csv(tracks, "small", "a", tmp_path / "s.csv")
    with pytest.raises(MetadataError, match="99999"):
        write_multihot(tmp_path / "s.csv", real_genres_csv, 1, tmp_path / "m.csv", tmp_path / "v.txt")
