"""The manifest joins labels with the shards' status tables."""

import pandas as pd

from fma_genre.features.manifest import NO_STATUS, build_manifest


def test_manifest_has_every_track_its_status_and_labels(tmp_path):
    multihot = tmp_path / "multihot.csv"
    pd.DataFrame(
        {
            "track_id": [2, 5, 1482, 99999],
            "split": ["training", "test", "training", "validation"],
            "genre_top": ["Hip-Hop", "Hip-Hop", "Rock", ""],
            "label_12": [0, 0, 1, 0],
            "label_21": [1, 1, 0, 0],
        }
    ).to_csv(multihot, index=False)
    shard_000, shard_001 = tmp_path / "000.status.csv", tmp_path / "001.status.csv"
    pd.DataFrame(
        {
            "track_id": [2, 5],
            "path": ["f/000/000002.npy", ""],
            "n_frames": [2998, ""],
            "sha1": ["a" * 40, ""],
            "status": ["ok", "empty file"],
            "level_00": [20.5, ""],
        }
    ).to_csv(shard_000, index=False)
    pd.DataFrame(
        {
            "track_id": [1482],
            "path": ["f/001/001482.npy"],
            "n_frames": [2998],
            "sha1": ["b" * 40],
            "status": ["ok"],
            "level_00": [19.0],
        }
    ).to_csv(shard_001, index=False)
    out = tmp_path / "final_feature_manifest.csv"
    build_manifest(multihot, [shard_000, shard_001], out)
    manifest = pd.read_csv(out, keep_default_na=False).set_index("track_id")
    # the feature digests, not the levels (which only the baseline reads, from the shard tables)
    assert list(manifest.columns) == [
        "split",
        "genre_top",
        "path",
        "n_frames",
        "sha1",
        "status",
        "label_12",
        "label_21",
    ]
    assert manifest.loc[2, "status"] == "ok" and manifest.loc[2, "n_frames"] == 2998
    assert manifest.loc[2, "sha1"] == "a" * 40 and manifest.loc[5, "sha1"] == ""
    assert manifest.loc[5, "status"] == "empty file" and manifest.loc[5, "path"] == ""
    assert manifest.loc[1482, "label_12"] == 1 and manifest.loc[1482, "path"] == "f/001/001482.npy"
    # A track no shard reported is kept, with the reason it has no features.
    assert manifest.loc[99999, "status"] == NO_STATUS and manifest.loc[99999, "n_frames"] == 0
    assert manifest.loc[99999, "sha1"] == ""
