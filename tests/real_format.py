"""A tracks.csv in the real FMA format (three header lines, the 52 real columns in order)."""

from pathlib import Path

import pandas as pd

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

# (track_id, split, subset, genre_top, genres, genres_all, duration): tracks 2 and 20 as in the
# shared README, the others made up but consistent with the real genres.csv hierarchy.
EXAMPLE_TRACKS = [
    (2, "training", "small", "Hip-Hop", "[21]", "[21]", 168),
    (5, "test", "small", "Hip-Hop", "[21]", "[21]", 206),
    (10, "validation", "small", "Pop", "[10]", "[10]", 161),
    (20, "training", "medium", "", "[76, 103]", "[17, 10, 76, 103]", 311),
    (140, "training", "small", "Folk", "[17]", "[17]", 253),
    (141, "training", "small", "Folk", "[17, 103]", "[17, 103]", 182),
    (1482, "training", "small", "Rock", "[12, 25]", "[12, 25]", 92),
    (155066, "training", "large", "Electronic", "[15]", "[15]", 30),
]


def write_tracks_csv(path: Path, rows=EXAMPLE_TRACKS, drop=()) -> Path:
    """Write rows in the real layout; `drop` removes (top, column) pairs to make it malformed."""
    records = []
    for track_id, split, subset, top, genres, genres_all, duration in rows:
        record = {column: "" for column in TRACKS_COLUMNS}
        record.update(
            {
                ("set", "split"): split,
                ("set", "subset"): subset,
                ("track", "genre_top"): top,
                ("track", "genres"): genres,
                ("track", "genres_all"): genres_all,
                ("track", "duration"): duration,
                ("track", "tags"): "[]",
                ("album", "tags"): "[]",
                ("artist", "tags"): "['band']",
                ("track", "title"): f"Track {track_id}",
                ("track", "bit_rate"): 256000,
            }
        )
        records.append(record)
    columns = [c for c in TRACKS_COLUMNS if c not in drop]
    frame = pd.DataFrame(records, index=pd.Index([r[0] for r in rows], name="track_id"))
    frame = frame[columns]
    frame.columns = pd.MultiIndex.from_tuples(columns)
    frame.to_csv(path)
    return path
