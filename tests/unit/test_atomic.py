"""Folders replaced atomically: results/model as links to the primary run's model."""

import os

from fma_genre.atomic import link_directory


def test_link_directory_links_every_file_but_the_skipped_and_replaces_the_old_folder(tmp_path):
    source, dest = tmp_path / "run_model", tmp_path / "model"
    source.mkdir()
    (source / "model.safetensors").write_bytes(b"weights")
    (source / ".snakemake_timestamp").touch()
    dest.mkdir()
    (dest / "stale.bin").write_bytes(b"old")

    link_directory(source, dest, skip=[".snakemake_timestamp"])

    assert sorted(p.name for p in dest.iterdir()) == ["model.safetensors"]
    assert os.path.samefile(dest / "model.safetensors", source / "model.safetensors")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left
