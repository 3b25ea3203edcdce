"""Folders replaced atomically: results/model as links to the primary run's model."""

import os
import stat

from fma_genre.io.atomic import atomic_directory, link_directory


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


def test_a_folder_written_atomically_is_readable_by_everyone(tmp_path):
    """mkdtemp makes the staging folder private and safetensors writes its files 0600."""
    with atomic_directory(tmp_path / "model") as staging:
        (staging / "model.safetensors").write_bytes(b"weights")
        os.chmod(staging / "model.safetensors", 0o600)
        (staging / "sub").mkdir(mode=0o700)
        (staging / "sub" / "part.bin").write_bytes(b"part")
    modes = {
        path.name: stat.S_IMODE(path.stat().st_mode)
        for path in [tmp_path / "model", *(tmp_path / "model").rglob("*")]
    }
    assert modes == {"model": 0o755, "model.safetensors": 0o644, "sub": 0o755, "part.bin": 0o644}
