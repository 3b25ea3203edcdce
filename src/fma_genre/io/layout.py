"""FMA's folder layout: a track's six-digit id names its file, the first three digits its folder."""

# Columns of the status table each feature shard writes, one row per track of its folder, and
# that the manifest carries on. `sha1` is the feature file's content digest, so that the manifest
# changes whenever a feature's content does.
STATUS_COLUMNS = ("track_id", "path", "n_frames", "sha1", "status")


def shard_of(track_id: int) -> str:
    """The FMA folder (`000` to `155`) that holds a track: also the unit of one feature job."""
    return f"{track_id:06d}"[:3]


def audio_relpath(track_id: int) -> str:
    """Path of a track's MP3 inside its `fma_<subset>` folder: `NNN/NNNNNN.mp3`."""
    return f"{shard_of(track_id)}/{track_id:06d}.mp3"
