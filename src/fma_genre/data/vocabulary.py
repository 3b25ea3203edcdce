"""The unified genre vocabulary: the labels every model, baseline and metric is over.

Labels come from the ids in `genres_all` (a track's genres and all their ancestors); titles come
from `genres.csv`, never matched by string. The vocabulary keeps genres with at least
`min_genre_tracks` training tracks, plus every top genre of the subset (fma_small's 8 classes),
in a stable order: top genres first, then the rest, each by genre id. `Vocabulary` carries what
the later stages need of it (label columns, titles, the top-level mask) in that order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from fma_genre.data.metadata import MetadataError
from fma_genre.io.atomic import atomic_path

VOCABULARY_COLUMNS = ("genre_id", "title", "top_level", "n_training_tracks")
LABEL_PREFIX = "label_"  # a label's column in the multi-hot table, the manifest and score tables


@dataclass(frozen=True)
class Genre:
    genre_id: int
    title: str
    top_level: bool  # a top genre class: the top-genre prediction is the best of these
    n_training_tracks: int

    @property
    def column(self) -> str:
        return f"{LABEL_PREFIX}{self.genre_id}"


@dataclass(frozen=True)
class Vocabulary:
    """The labels in order: each label's column, title and whether it is a top genre."""

    genres: tuple[Genre, ...]

    def __post_init__(self):
        if len({genre.title for genre in self.genres}) != len(self.genres):
            raise MetadataError(f"genre titles must be unique, found {self.titles}")

    def __len__(self) -> int:
        return len(self.genres)

    def __iter__(self):
        return iter(self.genres)

    @cached_property
    def columns(self) -> list[str]:
        return [genre.column for genre in self.genres]

    @cached_property
    def titles(self) -> list[str]:
        return [genre.title for genre in self.genres]

    @cached_property
    def top_level_mask(self) -> np.ndarray:
        """(labels,) bool: which labels are top genres."""
        return np.array([genre.top_level for genre in self.genres], dtype=bool)

    @cached_property
    def top_level_titles(self) -> list[str]:
        return [genre.title for genre in self.genres if genre.top_level]

    @classmethod
    def read(cls, path: str | os.PathLike) -> Vocabulary:
        frame = pd.read_csv(path, sep="\t", keep_default_na=False)
        missing = [c for c in VOCABULARY_COLUMNS if c not in frame.columns]
        if missing:
            raise MetadataError(f"{path}: missing column(s) {missing}, expected {VOCABULARY_COLUMNS}")
        return cls(
            tuple(
                Genre(int(r.genre_id), str(r.title), bool(r.top_level), int(r.n_training_tracks))
                for r in frame.itertuples()
            )
        )

    def write(self, path: str | os.PathLike) -> None:
        frame = pd.DataFrame(
            [(g.genre_id, g.title, int(g.top_level), g.n_training_tracks) for g in self.genres],
            columns=VOCABULARY_COLUMNS,
        )
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, sep="\t", index=False)


def id_lists(column: pd.Series) -> list[list[int]]:
    """The subset table's space-separated genre ids, per track."""
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


def build_vocabulary(subset: pd.DataFrame, genres: pd.DataFrame, min_genre_tracks: int) -> Vocabulary:
    """Genres with at least `min_genre_tracks` training tracks, plus the subset's top genres."""
    genres_all = id_lists(subset["genres_all"])
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
    return Vocabulary(
        tuple(Genre(g, str(genres.loc[g, "title"]), g in top_ids, counts.get(g, 0)) for g in ordered)
    )
