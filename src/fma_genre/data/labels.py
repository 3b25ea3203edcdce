"""Multi-hot genre labels over the unified vocabulary (`vocabulary.py`), from genre ids."""

from __future__ import annotations

import logging
import os

import pandas as pd

from fma_genre.data.metadata import read_genres
from fma_genre.data.vocabulary import Vocabulary, build_vocabulary, id_lists
from fma_genre.io.atomic import atomic_path

log = logging.getLogger(__name__)


def multi_hot(subset: pd.DataFrame, vocabulary: Vocabulary) -> pd.DataFrame:
    """One 0/1 column per vocabulary genre, in vocabulary order."""
    genres_all = [set(ids) for ids in id_lists(subset["genres_all"])]
    return pd.DataFrame(
        {g.column: [int(g.genre_id in ids) for ids in genres_all] for g in vocabulary},
        index=subset.index,
    )


def write_multihot(
    subset_csv: str | os.PathLike,
    genres_csv: str | os.PathLike,
    min_genre_tracks: int,
    multihot_csv: str | os.PathLike,
    vocabulary_tsv: str | os.PathLike,
) -> Vocabulary:
    subset = pd.read_csv(subset_csv, dtype={"genre_top": str, "genres": str, "genres_all": str})
    vocabulary = build_vocabulary(subset, read_genres(genres_csv), min_genre_tracks)
    table = pd.concat([subset[["track_id", "split", "genre_top"]], multi_hot(subset, vocabulary)], axis=1)
    with atomic_path(multihot_csv) as tmp:
        table.to_csv(tmp, index=False)
    vocabulary.write(vocabulary_tsv)
    log.info(
        "%d labels (%d top genres) from %d tracks; min_genre_tracks=%d",
        len(vocabulary),
        len(vocabulary.top_level_titles),
        len(subset),
        min_genre_tracks,
    )
    return vocabulary
