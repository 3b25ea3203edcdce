"""The demo's metadata catalogue: artists, albums and tracks in tracks.csv's 52 real columns,
over fma_small's eight genres and the real genres.csv hierarchy, split by artist about 80/10/10
like FMA; plus a few tracks outside the small subset, and the clip each small track gets.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fma_genre.demo.styles import GENRE_STYLES, ArtistStyle, artist_style
from fma_genre.demo.synthesis import ClipJob

# Genres of the tracks outside the small subset (rows in tracks.csv, no audio): Jazz, Classical,
# Blues, Experimental Pop + Singer-Songwriter (two top-level genres, no genre_top, like track
# 20), Rock, Electronic.
EXTRA_TRACK_GENRE_IDS = ([4], [5], [3], [76, 103], [12], [15])


# tracks.csv's 52 columns in the real order.
TRACKS_COLUMNS = [
    *(
        ("album", name)
        for name in (
            "comments date_created date_released engineer favorites id information listens producer tags "
            "title tracks type"
        ).split()
    ),
    *(
        ("artist", name)
        for name in (
            "active_year_begin active_year_end associated_labels bio comments date_created favorites id "
            "latitude location longitude members name related_projects tags website wikipedia_page"
        ).split()
    ),
    ("set", "split"),
    ("set", "subset"),
    *(
        ("track", name)
        for name in (
            "bit_rate comments composer date_created date_recorded duration favorites genre_top genres "
            "genres_all information interest language_code license listens lyricist number publisher tags "
            "title"
        ).split()
    ),
]


def read_genres() -> pd.DataFrame:
    """The real genres.csv shipped in the package, indexed by genre_id."""
    with importlib.resources.files("fma_genre").joinpath("resources/genres.csv").open("rb") as f:
        return pd.read_csv(f, index_col="genre_id")


def genres_with_ancestors(genre_ids: list[int], genres: pd.DataFrame) -> list[int]:
    """The genres plus every ancestor of each (FMA's `genres_all`), ascending."""
    found = set()
    for genre_id in genre_ids:
        while genre_id != 0 and genre_id not in found:
            found.add(genre_id)
            genre_id = int(genres.at[genre_id, "parent"])
    return sorted(found)


def split_artists(n_artists: int) -> list[str]:
    """Split of each of a genre's artists: about 80/10/10 with at least one artist per split."""
    n_held_out = max(1, round(0.1 * n_artists))
    n_training = n_artists - 2 * n_held_out
    return ["training"] * n_training + ["validation"] * n_held_out + ["test"] * n_held_out


WORDS = (
    "river",
    "static",
    "golden",
    "night",
    "paper",
    "echo",
    "velvet",
    "iron",
    "honey",
    "glass",
    "signal",
    "orchard",
    "neon",
    "hollow",
    "salt",
    "ember",
    "cloud",
    "silver",
    "wild",
    "low",
    "summer",
    "machine",
    "ghost",
    "lantern",
    "harbor",
    "copper",
    "blue",
    "quiet",
    "desert",
    "tide",
)


PLACES = (
    ("Brooklyn, NY", 40.65, -73.95),
    ("Philadelphia, PA", 39.95, -75.17),
    ("Berlin", 52.52, 13.40),
    ("Montréal", 45.50, -73.57),
    ("Lyon, France", 45.76, 4.84),
    ("Austin, TX", 30.27, -97.74),
    ("Lagos", 6.52, 3.38),
    ("Mumbai", 19.08, 72.88),
    ("Glasgow", 55.86, -4.25),
    ("Seoul", 37.57, 126.98),
)


LICENSES = (
    "Attribution-NonCommercial-ShareAlike 3.0 International",
    "Attribution-NonCommercial-NoDerivatives (aka Music Sharing) 3.0 International",
    "Attribution 4.0 International",
    "Attribution-ShareAlike 3.0 United States",
)


CATALOGUE_START = np.datetime64("2008-11-25T00:00:00")


CATALOGUE_SECONDS = 8 * 365 * 24 * 3600


def _title(rng: np.random.Generator, n_words: int) -> str:
    return " ".join(str(word).capitalize() for word in rng.choice(WORDS, size=n_words, replace=False))


def _timestamp(seconds: float) -> str:
    return str(CATALOGUE_START + np.timedelta64(int(seconds), "s")).replace("T", " ")


def _maybe(rng: np.random.Generator, value, probability: float = 0.3):
    """`value` for some rows, missing for the rest, as sparse FMA fields are."""
    return value if rng.random() < probability else np.nan


def _artist_columns(rng: np.random.Generator, artist_id: int, name: str, genre: str) -> dict:
    location, latitude, longitude = PLACES[rng.integers(len(PLACES))]
    created_s = rng.uniform(0, CATALOGUE_SECONDS / 2)
    return {
        "active_year_begin": _maybe(rng, f"{rng.integers(1995, 2012)}-01-01 00:00:00", 0.4),
        "active_year_end": _maybe(rng, f"{rng.integers(2012, 2017)}-01-01 00:00:00", 0.1),
        "associated_labels": _maybe(rng, f"{_title(rng, 1)} Records", 0.2),
        "bio": f"<p>{name} make {genre.lower()} music from {location}.</p>",
        "comments": int(rng.integers(0, 5)),
        "date_created": _timestamp(created_s),
        "favorites": int(rng.integers(0, 60)),
        "id": artist_id,
        "latitude": round(latitude + float(rng.normal(0, 0.05)), 6),
        "location": location,
        "longitude": round(longitude + float(rng.normal(0, 0.05)), 6),
        "members": _maybe(rng, ", ".join(_title(rng, 1) for _ in range(3)), 0.5),
        "name": name,
        "related_projects": _maybe(rng, _title(rng, 2), 0.1),
        "tags": str([name.lower().replace(" ", "")]) if rng.random() < 0.5 else "[]",
        "website": f"http://www.{name.lower().replace(' ', '')}.com",
        "wikipedia_page": _maybe(rng, f"http://en.wikipedia.org/wiki/{name.replace(' ', '_')}", 0.05),
        "_created_s": created_s,
    }


def _album_columns(rng: np.random.Generator, album_id: int, artist: dict, n_tracks: int) -> dict:
    created_s = artist["_created_s"] + rng.uniform(0, CATALOGUE_SECONDS / 4)
    return {
        "comments": int(rng.integers(0, 3)),
        "date_created": _timestamp(created_s),
        "date_released": _timestamp(created_s + rng.uniform(0, 90 * 24 * 3600))[:10] + " 00:00:00",
        "engineer": _maybe(rng, _title(rng, 2), 0.1),
        "favorites": int(rng.integers(0, 10)),
        "id": album_id,
        "information": f"<p>{_title(rng, 3)}.</p>" if rng.random() < 0.6 else np.nan,
        "listens": int(rng.integers(500, 50000)),
        "producer": _maybe(rng, _title(rng, 2), 0.1),
        "tags": "[]",
        "title": _title(rng, 2),
        "tracks": n_tracks + int(rng.integers(0, 6)),
        "type": str(rng.choice(("Album", "Album", "Single Tracks", "Radio Program"))),
        "_created_s": created_s,
    }


def _track_columns(
    rng: np.random.Generator,
    album: dict,
    number: int,
    genre_ids: list[int],
    genre_top: str | float,
    genres: pd.DataFrame,
    subset: str,
    split: str,
) -> dict:
    created_s = album["_created_s"] + rng.uniform(0, 3600)
    return {
        "bit_rate": int(rng.choice((128000, 192000, 256000, 320000), p=(0.1, 0.15, 0.35, 0.4))),
        "comments": int(rng.integers(0, 3)),
        "composer": _maybe(rng, _title(rng, 2), 0.05),
        "date_created": _timestamp(created_s),
        "date_recorded": _maybe(
            rng, _timestamp(created_s - rng.uniform(0, 365 * 24 * 3600))[:10] + " 00:00:00", 0.1
        ),
        "duration": int(rng.integers(90, 420)),
        "favorites": int(rng.integers(0, 10)),
        "genre_top": genre_top,
        "genres": str(genre_ids),
        "genres_all": str(genres_with_ancestors(genre_ids, genres)),
        "information": _maybe(rng, f"<p>{_title(rng, 2)}</p>", 0.05),
        "interest": int(rng.integers(100, 20000)),
        "language_code": _maybe(rng, "en", 0.3),
        "license": str(rng.choice(LICENSES)),
        "listens": int(rng.integers(50, 10000)),
        "lyricist": _maybe(rng, _title(rng, 2), 0.03),
        "number": number,
        "publisher": _maybe(rng, f"{_title(rng, 1)} Publishing", 0.05),
        "tags": "[]",
        "title": _title(rng, int(rng.integers(1, 4))),
        "split": split,
        "subset": subset,
    }


def _descendants(genre_id: int, genres: pd.DataFrame) -> list[int]:
    return [int(g) for g in genres.index[(genres["top_level"] == genre_id) & (genres.index != genre_id)]]


@dataclass(frozen=True)
class Catalogue:
    """The whole synthetic dataset before rendering: its tracks.csv and its clips to render."""

    tracks: pd.DataFrame  # tracks.csv, 52 columns
    clip_jobs: list[ClipJob]  # one per small-subset track, by ascending track id


@dataclass
class _CatalogueBuilder:
    """The catalogue's rows as they are added, artist by artist, each with one album."""

    rng: np.random.Generator
    genres: pd.DataFrame  # genres.csv
    track_ids: np.ndarray  # the ids to hand out, in order
    rows: dict[int, dict] = field(default_factory=dict)
    n_artists: int = 0  # also the number of albums: an artist's id is its album's

    def add_artist(
        self,
        genre: str,
        genre_ids_of_tracks: list[list[int]],
        genre_top: str | float,
        subset: str,
        split: str,
    ) -> list[int]:
        """Rows for a new artist with one album holding these tracks; return their ids."""
        rng = self.rng
        self.n_artists += 1
        name = _title(rng, 2) if rng.random() < 0.6 else f"The {_title(rng, 1)}s"
        artist = _artist_columns(rng, self.n_artists, name, genre)
        album = _album_columns(rng, self.n_artists, artist, len(genre_ids_of_tracks))
        ids = []
        for number, genre_ids in enumerate(genre_ids_of_tracks, start=1):
            track_id = int(self.track_ids[len(self.rows)])
            track = _track_columns(rng, album, number, genre_ids, genre_top, self.genres, subset, split)
            self.rows[track_id] = (
                {("album", key): value for key, value in album.items()}
                | {("artist", key): value for key, value in artist.items()}
                | {("set", "split"): track.pop("split"), ("set", "subset"): track.pop("subset")}
                | {("track", key): value for key, value in track.items()}
            )
            ids.append(track_id)
        return ids

    def add_small_genre(self, genre: str, tracks_per_genre: int) -> tuple[dict[int, ArtistStyle], list[int]]:
        """A genre of the small subset, its artists split about 80/10/10: ({track id: its artist's
        style}, the training track ids)."""
        rng = self.rng
        genre_id = int(self.genres.index[self.genres["title"] == genre][0])
        subgenres = _descendants(genre_id, self.genres)
        n_artists = max(3, tracks_per_genre // 4)
        styles, training = {}, []
        for artist_index, split in enumerate(split_artists(n_artists)):
            n_tracks = tracks_per_genre // n_artists + (artist_index < tracks_per_genre % n_artists)
            style = artist_style(rng, genre)
            if subgenres and rng.random() < 0.6:
                artist_genres = [genre_id, int(rng.choice(subgenres))]
            else:
                artist_genres = [genre_id]
            genre_ids_of_tracks = [
                artist_genres if rng.random() < 0.7 else [genre_id] for _ in range(n_tracks)
            ]
            ids = self.add_artist(genre, genre_ids_of_tracks, genre, "small", split)
            styles.update(dict.fromkeys(ids, style))
            if split == "training":
                training += ids
        return styles, training

    def add_tracks_outside_the_subset(self) -> None:
        """One track of each of EXTRA_TRACK_GENRE_IDS, in fma_medium or fma_large."""
        rng = self.rng
        for genre_ids in EXTRA_TRACK_GENRE_IDS:
            top_levels = {int(self.genres.at[g, "top_level"]) for g in genre_ids}
            genre_top = self.genres.at[top_levels.pop(), "title"] if len(top_levels) == 1 else np.nan
            subset = str(rng.choice(("medium", "large")))
            split = str(rng.choice(("training", "validation", "test"), p=(0.8, 0.1, 0.1)))
            genre = "Pop" if pd.isna(genre_top) else str(genre_top)
            self.add_artist(genre, [genre_ids], genre_top, subset, split)

    def tracks_table(self) -> pd.DataFrame:
        """tracks.csv: the 52 columns under their two header levels, indexed by track_id."""
        tracks = pd.DataFrame.from_dict(self.rows, orient="index").sort_index()
        tracks = tracks[TRACKS_COLUMNS]  # drops the "_created_s" helper entries
        tracks.columns = pd.MultiIndex.from_tuples(TRACKS_COLUMNS)
        tracks.index.name = "track_id"
        return tracks


def build_catalogue(tracks_per_genre: int, seed: int, clip_seconds: float) -> Catalogue:
    """All tracks' metadata (small subset plus a few others) and the jobs that render their clips."""
    if tracks_per_genre < 3:
        raise ValueError(
            f"tracks_per_genre must be at least 3 (one artist per split), got {tracks_per_genre}"
        )
    rng = np.random.default_rng(seed)
    # Ids spread over several NNN folders (feature shards), unique, in a range that grows with
    # the dataset: the demo's 192 tracks make 5 shards of about 40.
    n_listed = len(GENRE_STYLES) * tracks_per_genre + len(EXTRA_TRACK_GENRE_IDS)
    track_ids = rng.choice(np.arange(2, max(5000, 3 * n_listed)), size=n_listed, replace=False)
    builder = _CatalogueBuilder(rng, read_genres(), track_ids)
    artist_styles, training_ids_by_genre = {}, []
    for genre in GENRE_STYLES:
        styles, training = builder.add_small_genre(genre, tracks_per_genre)
        artist_styles |= styles
        training_ids_by_genre.append(training)
    builder.add_tracks_outside_the_subset()
    # Broken clips, like FMA's, in the training split of three different genres.
    broken = {
        int(rng.choice(training)): kind
        for training, kind in zip(training_ids_by_genre, ("empty", "short", "not_audio"))
    }
    clip_jobs = [
        ClipJob(track_id, artist_styles[track_id], broken.get(track_id, "audio"), clip_seconds, seed)
        for track_id in sorted(artist_styles)
    ]
    return Catalogue(builder.tracks_table(), clip_jobs)
