"""FMA metadata: read the real `tracks.csv` / `genres.csv` formats and write the subset table.

`tracks.csv` has three header lines (top level, column name, a `track_id` line) and 52 columns;
list columns hold Python literals such as `[17, 10, 76, 103]`. Only the columns the pipeline
needs are parsed, which keeps fma_large's 250 MB file fast to read.
"""

from __future__ import annotations

import ast
import csv
import logging
import os
from pathlib import Path

import pandas as pd

from fma_genre.io.atomic import atomic_path
from fma_genre.io.layout import audio_relpath

log = logging.getLogger(__name__)

SUBSETS = ("small", "medium", "large")
SPLITS = ("training", "validation", "test")

# (top level, column) of tracks.csv -> name in the subset table.
NEEDED_TRACK_COLUMNS = {
    ("set", "subset"): "subset",
    ("set", "split"): "split",
    ("track", "genre_top"): "genre_top",
    ("track", "genres"): "genres",
    ("track", "genres_all"): "genres_all",
    ("track", "duration"): "duration",
}
GENRE_COLUMNS = ("genre_id", "parent", "title", "top_level")


class MetadataError(ValueError):
    """A metadata file is not in the format the pipeline expects; the message says how."""


def _header_lines(path: Path) -> tuple[list[str], list[str], list[str]]:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            return next(reader), next(reader), next(reader)
        except StopIteration:
            raise MetadataError(
                f"{path}: expected tracks.csv's three header lines (top level, column name, "
                "'track_id'), found fewer lines"
            ) from None


def read_tracks(tracks_csv: str | os.PathLike) -> pd.DataFrame:
    """The columns of `tracks.csv` the pipeline needs, indexed by track_id.

    Stops with a `MetadataError` naming the file and what is missing when the layout is not
    FMA's: the three header lines, and each (top level, column) of `NEEDED_TRACK_COLUMNS`.
    """
    path = Path(tracks_csv)
    top, name, index_line = _header_lines(path)
    if not index_line or index_line[0] != "track_id":
        raise MetadataError(
            f"{path}: expected a third header line starting with 'track_id' (the FMA tracks.csv "
            f"layout), found {index_line[:3]!r}"
        )
    # The top level is written once per group in some exports and repeated in others.
    filled_top, current = [], ""
    for level in top:
        current = level or current
        filled_top.append(current)
    position = {(t, n): i for i, (t, n) in enumerate(zip(filled_top, name)) if i > 0}
    missing = [key for key in NEEDED_TRACK_COLUMNS if key not in position]
    if missing:
        raise MetadataError(
            f"{path}: missing column(s) {', '.join(map(str, missing))}; expected FMA's tracks.csv "
            f"with 52 columns, found {len(position)} columns"
        )
    # pandas returns the used columns in file order, whatever the order of `usecols`.
    needed = sorted(NEEDED_TRACK_COLUMNS, key=position.__getitem__)
    tracks = pd.read_csv(
        path,
        header=None,
        skiprows=3,
        usecols=[0] + [position[key] for key in needed],
        index_col=0,
        dtype=str,
        keep_default_na=False,
    )
    tracks.index.name = "track_id"
    tracks.columns = [NEEDED_TRACK_COLUMNS[key] for key in needed]
    try:
        tracks.index = tracks.index.astype(int)
    except ValueError as error:
        raise MetadataError(f"{path}: a track_id is not an integer ({error})") from None
    check_unique_track_ids(tracks, path)
    return tracks


def listed(ids, limit: int = 5) -> str:
    ids = list(ids)
    return ", ".join(map(str, ids[:limit])) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def check_unique_track_ids(tracks: pd.DataFrame, path: Path) -> None:
    """Every track once: a track listed twice, in two splits, would leak between them."""
    repeated = tracks[tracks.index.duplicated(keep=False)]
    if not len(repeated):
        return
    splits = repeated.groupby(level=0)["split"].agg(lambda s: sorted(set(s)))
    leaks = {track_id: names for track_id, names in splits.items() if len(names) > 1}
    leak = ""
    if leaks:
        track_id, names = next(iter(leaks.items()))
        leak = f"; {len(leaks)} of them in several splits, a leak between splits (track {track_id}: {' and '.join(names)})"
    raise MetadataError(
        f"{path}: expected each track_id once, found {len(splits)} listed more than once: "
        f"{listed(splits.index)}{leak}"
    )


def parse_durations(tracks: pd.DataFrame, path: Path) -> pd.Series:
    """Column ('track', 'duration') in seconds; a value that is not a positive number stops the
    stage, naming its tracks (FMA lists every track's duration: such a file is damaged)."""
    durations = pd.to_numeric(tracks["duration"], errors="coerce")
    bad = tracks.index[~(durations > 0)]
    if len(bad):
        raise MetadataError(
            f"{path}: column ('track', 'duration') must be a positive number of seconds, found "
            f"{tracks.loc[bad[0], 'duration']!r} for track {bad[0]} ({len(bad)} such tracks: {listed(bad)})"
        )
    return durations


def _parse_id_list(text: str, track_id: int, column: str, path: Path) -> list[int]:
    try:
        value = ast.literal_eval(text) if text else []
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
        raise MetadataError(
            f"{path}: track {track_id}: column ('track', '{column}') must be a list of genre ids "
            f"such as [17, 10], found {text!r}"
        )
    return value


def select_subset(tracks: pd.DataFrame, subset: str, path: Path) -> pd.DataFrame:
    """Tracks of `subset`; FMA's subsets nest (small ⊂ medium ⊂ large)."""
    if subset not in SUBSETS:
        raise MetadataError(f"subset must be one of {', '.join(SUBSETS)}, found {subset!r}")
    unknown = sorted(set(tracks["subset"]) - set(SUBSETS))
    if unknown:
        raise MetadataError(
            f"{path}: column ('set', 'subset') must hold {'/'.join(SUBSETS)}, found {unknown[:5]}"
        )
    rank = {name: i for i, name in enumerate(SUBSETS)}
    selected = tracks[tracks["subset"].map(rank) <= rank[subset]]
    bad_split = selected[~selected["split"].isin(SPLITS)]
    if len(bad_split):
        track_id = bad_split.index[0]
        raise MetadataError(
            f"{path}: track {track_id}: column ('set', 'split') must be one of {'/'.join(SPLITS)}, "
            f"found {bad_split.loc[track_id, 'split']!r} ({len(bad_split)} such tracks)"
        )
    return selected


def write_subset_csv(
    tracks_csv: str | os.PathLike, subset: str, audio_dir: str, out_csv: str | os.PathLike
) -> int:
    """Write one row per track of `subset`: id, split, genres, audio path, duration.

    `audio_dir` is the extracted `fma_<subset>` folder as the pipeline names it (relative to the
    working directory), so that audio paths stay valid wherever the project lives.
    """
    path = Path(tracks_csv)
    tracks = select_subset(read_tracks(path), subset, path)
    for column in ("genres", "genres_all"):
        tracks[column] = [
            _parse_id_list(text, track_id, column, path) for track_id, text in tracks[column].items()
        ]
    table = pd.DataFrame(
        {
            "track_id": tracks.index,
            "split": tracks["split"].to_numpy(),
            "genre_top": tracks["genre_top"].to_numpy(),
            "genres": [" ".join(map(str, ids)) for ids in tracks["genres"]],
            "genres_all": [" ".join(map(str, ids)) for ids in tracks["genres_all"]],
            "audio_path": [f"{audio_dir}/{audio_relpath(t)}" for t in tracks.index],
            "duration": parse_durations(tracks, path).to_numpy(),
        }
    ).sort_values("track_id")
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    log.info(
        "%s: %d tracks of subset %r (%s)",
        out_csv,
        len(table),
        subset,
        table["split"].value_counts().to_dict(),
    )
    return len(table)


def read_subset_track_ids(subset_csv: str | os.PathLike) -> list[int]:
    """Track ids of a subset table, read without pandas (the DAG calls this while planning)."""
    with open(subset_csv, newline="") as f:
        return [int(row["track_id"]) for row in csv.DictReader(f)]


def read_genres(genres_csv: str | os.PathLike) -> pd.DataFrame:
    """FMA's genre hierarchy, indexed by genre_id, with parent, title and top_level (root id)."""
    path = Path(genres_csv)
    genres = pd.read_csv(path, keep_default_na=False)
    missing = [c for c in GENRE_COLUMNS if c not in genres.columns]
    if missing:
        raise MetadataError(
            f"{path}: missing column(s) {missing}; expected FMA's genres.csv "
            f"(genre_id,#tracks,parent,title,top_level), found {list(genres.columns)}"
        )
    return genres.set_index("genre_id")[["parent", "title", "top_level"]]
