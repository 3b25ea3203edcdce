"""Multi-hot genre labels from genre ids, and the unified genre vocabulary.

Labels come from the ids in `genres_all` (a track's genres and all their ancestors); titles come
from `genres.csv`, never matched by string. The vocabulary keeps genres with at least
`min_genre_tracks` training tracks, plus every top genre of the subset (fma_small's 8 classes),
in a stable order: top genres first, then the rest, each by genre id.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import pandas as pd

from fma_genre.atomic import atomic_path
from fma_genre.metadata import MetadataError, read_genres

log = logging.getLogger(__name__)

VOCABULARY_COLUMNS = ("genre_id", "title", "top_level", "n_training_tracks")


@dataclass(frozen=True)
class Genre:
    genre_id: int
    title: str
    top_level: bool  # a top genre class: the top-genre prediction is the best of these
    n_training_tracks: int

    @property
    def column(self) -> str:
        return label_column(self.genre_id)


def label_column(genre_id: int) -> str:
    return f"label_{genre_id}"


def _id_lists(column: pd.Series) -> list[list[int]]:
    return [[int(i) for i in str(text).split()] for text in column.fillna("")]


def top_genre_ids(genres_all: list[list[int]], genres: pd.DataFrame) -> list[int | None]:
    """Each track's top genre id: the single root among its genres, None when it has 0 or several.

    This is how FMA defines `genre_top`; deriving it from ids avoids matching titles.
    """
    roots = set(genres.index[genres["parent"] == 0])
    result = []
    for ids in genres_all:
        track_roots = {i for i in ids if i in roots}
        result.append(track_roots.pop() if len(track_roots) == 1 else None)
    return result


def build_vocabulary(subset: pd.DataFrame, genres: pd.DataFrame, min_genre_tracks: int) -> list[Genre]:
    """Genres with at least `min_genre_tracks` training tracks, plus the subset's top genres."""
    genres_all = _id_lists(subset["genres_all"])
    unknown = sorted({i for ids in genres_all for i in ids} - set(genres.index))
    if unknown:
        raise MetadataError(f"genres_all holds genre ids absent from genres.csv: {unknown[:10]}")
    has_top = subset["genre_top"].fillna("") != ""
    top_ids = {g for g, keep in zip(top_genre_ids(genres_all, genres), has_top) if keep and g is not None}
    training = (subset["split"] == "training").to_numpy()
    counts: dict[int, int] = {}
    for ids, is_training in zip(genres_all, training):
        if is_training:
            for genre_id in set(ids):
                counts[genre_id] = counts.get(genre_id, 0) + 1
    kept = top_ids | {g for g, n in counts.items() if n >= min_genre_tracks}
    ordered = sorted(kept, key=lambda g: (g not in top_ids, g))
    return [
        Genre(g, str(genres.loc[g, "title"]), g in top_ids, counts.get(g, 0)) for g in ordered
    ]


def multi_hot(subset: pd.DataFrame, vocabulary: list[Genre]) -> pd.DataFrame:
    """One 0/1 column per vocabulary genre, in vocabulary order."""
    genres_all = [set(ids) for ids in _id_lists(subset["genres_all"])]
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
) -> list[Genre]:
    subset = pd.read_csv(subset_csv, dtype={"genre_top": str, "genres": str, "genres_all": str})
    genres = read_genres(genres_csv)
    vocabulary = build_vocabulary(subset, genres, min_genre_tracks)
    table = pd.concat(
        [subset[["track_id", "split", "genre_top"]], multi_hot(subset, vocabulary)], axis=1
    )
    with atomic_path(multihot_csv) as tmp:
        table.to_csv(tmp, index=False)
    write_vocabulary(vocabulary, vocabulary_tsv)
    log.info(
        "%d labels (%d top genres) from %d tracks; min_genre_tracks=%d",
        len(vocabulary), sum(g.top_level for g in vocabulary), len(subset), min_genre_tracks,
    )
    return vocabulary


def write_vocabulary(vocabulary: list[Genre], path: str | os.PathLike) -> None:
    frame = pd.DataFrame(
        [(g.genre_id, g.title, int(g.top_level), g.n_training_tracks) for g in vocabulary],
        columns=VOCABULARY_COLUMNS,
    )
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)


def read_vocabulary(path: str | os.PathLike) -> list[Genre]:
    frame = pd.read_csv(path, sep="\t", keep_default_na=False)
    missing = [c for c in VOCABULARY_COLUMNS if c not in frame.columns]
    if missing:
        raise MetadataError(f"{path}: missing column(s) {missing}, expected {VOCABULARY_COLUMNS}")
    return [
        Genre(int(r.genre_id), str(r.title), bool(r.top_level), int(r.n_training_tracks))
        for r in frame.itertuples()
    ]
