"""extract_verified on small BZIP2 zips laid out like the FMA archives."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from fma_genre.data.archive import ArchiveError, extract_verified

FILES = {
    "README.txt": b"fma_small: 8000 clips of 30 s\n",
    "000/000002.mp3": os.urandom(200_000),
    "000/000005.mp3": os.urandom(150_000),
    "011/011683.mp3": os.urandom(180_000),
    "tracks.csv": b"track_id,genre_top\n2,Hip-Hop\n",
}


def checksums_text(files: dict[str, bytes]) -> str:
    listed = {name: body for name, body in files.items() if name != "README.txt"}
    return "".join(f"{hashlib.sha1(body).hexdigest()}  {name}\n" for name, body in listed.items())


def build_zip(path: Path, files: dict[str, bytes], checksums: str | None, root: str = "fma_small") -> Path:
    """A BZIP2 zip like the FMA ones: everything under `root/`, with a `root/checksums` member."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_BZIP2) as archive:
        archive.writestr(f"{root}/", b"")
        if checksums is not None:
            archive.writestr(f"{root}/checksums", checksums)
        for name, body in files.items():
            archive.writestr(f"{root}/{name}", body)
    return path


def leftovers(parent: Path) -> list[str]:
    """Hidden temporary folders that extraction may have left beside the destination."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.fixture
def good_zip(tmp_path) -> Path:
    (tmp_path / "zips").mkdir()
    return build_zip(tmp_path / "zips" / "fma_small.zip", FILES, checksums_text(FILES))


@pytest.mark.parametrize("workers", [1, 4])
def test_good_archive_extracts_every_member(good_zip, tmp_path, workers):
    dest = tmp_path / "raw" / "fma_small"
    extract_verified(good_zip, dest, root_name="fma_small", workers=workers)
    extracted = {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert extracted == {**FILES, "checksums": checksums_text(FILES).encode()}
    assert leftovers(dest.parent) == []


def test_truncated_zip_is_reported_and_leaves_nothing(good_zip, tmp_path):
    data = good_zip.read_bytes()
    good_zip.write_bytes(data[: len(data) // 2])
    dest = tmp_path / "raw" / "fma_small"
    with pytest.raises(ArchiveError) as excinfo:
        extract_verified(good_zip, dest, root_name="fma_small")
    message = str(excinfo.value)
    assert message.startswith(f"{good_zip} is not a complete zip archive: File is not a zip file")
    assert f"{len(data) // 2} bytes found (truncated download?)" in message
    assert not dest.exists()
    assert not dest.parent.exists()


def test_corrupt_member_data_is_reported(good_zip, tmp_path):
    with zipfile.ZipFile(good_zip) as archive:
        info = archive.getinfo("fma_small/000/000005.mp3")
    data = bytearray(good_zip.read_bytes())
    # The local header is 30 bytes plus the name; the compressed data follows it.
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    good_zip.write_bytes(bytes(data))
    dest = tmp_path / "raw" / "fma_small"
    with pytest.raises(ArchiveError, match=f"{good_zip}: member fma_small/000/000005.mp3 is damaged"):
        extract_verified(good_zip, dest, root_name="fma_small", workers=2)
    assert not dest.exists()
    assert leftovers(dest.parent) == []


def test_member_not_matching_checksums_is_named(tmp_path):
    wrong_sha1 = "1234567890" * 4
    tampered = checksums_text(FILES).replace(hashlib.sha1(FILES["000/000005.mp3"]).hexdigest(), wrong_sha1)
    zip_path = build_zip(tmp_path / "fma_small.zip", FILES, tampered)
    dest = tmp_path / "raw" / "fma_small"
    with pytest.raises(ArchiveError) as excinfo:
        extract_verified(zip_path, dest, root_name="fma_small")
    actual = hashlib.sha1(FILES["000/000005.mp3"]).hexdigest()
    assert str(excinfo.value) == (
        f"{zip_path}: member fma_small/000/000005.mp3: SHA1 mismatch: expected {wrong_sha1}, found {actual}"
    )
    assert not dest.exists()
    assert leftovers(dest.parent) == []


def test_missing_checksums_member_is_an_error(tmp_path):
    zip_path = build_zip(tmp_path / "fma_small.zip", FILES, checksums=None)
    with pytest.raises(ArchiveError, match="has no fma_small/checksums member"):
        extract_verified(zip_path, tmp_path / "raw" / "fma_small", root_name="fma_small")


def test_unlisted_mp3_is_an_error(tmp_path):
    listed = {name: body for name, body in FILES.items() if name != "011/011683.mp3"}
    zip_path = build_zip(tmp_path / "fma_small.zip", FILES, checksums_text(listed))
    with pytest.raises(
        ArchiveError, match="member fma_small/011/011683.mp3 is not listed in fma_small/checksums"
    ):
        extract_verified(zip_path, tmp_path / "raw" / "fma_small", root_name="fma_small")


def test_listed_file_missing_from_archive_is_an_error(tmp_path):
    present = {name: body for name, body in FILES.items() if name != "tracks.csv"}
    zip_path = build_zip(tmp_path / "fma_small.zip", present, checksums_text(FILES))
    missing_message = "1 files listed in fma_small/checksums are missing from the archive, e.g. tracks.csv"
    with pytest.raises(ArchiveError, match=missing_message):
        extract_verified(zip_path, tmp_path / "raw" / "fma_small", root_name="fma_small")


def test_member_outside_the_top_folder_is_refused(tmp_path):
    zip_path = build_zip(tmp_path / "fma_small.zip", FILES, checksums_text(FILES))
    with zipfile.ZipFile(zip_path, "a", compression=zipfile.ZIP_BZIP2) as archive:
        archive.writestr("fma_small/../escape.txt", b"x")
    with pytest.raises(
        ArchiveError, match=r"member fma_small/\.\./escape\.txt lies outside the top folder fma_small/"
    ):
        extract_verified(zip_path, tmp_path / "raw" / "fma_small", root_name="fma_small")
    assert not (tmp_path / "raw" / "escape.txt").exists()


def test_reextract_replaces_existing_destination(good_zip, tmp_path):
    dest = tmp_path / "raw" / "fma_small"
    (dest / "000").mkdir(parents=True)
    (dest / "000" / "000002.mp3").write_bytes(b"an older extraction")
    (dest / "stale.txt").write_text("not in the archive")
    extract_verified(good_zip, dest, root_name="fma_small")
    assert (dest / "000" / "000002.mp3").read_bytes() == FILES["000/000002.mp3"]
    assert not (dest / "stale.txt").exists()
    assert leftovers(dest.parent) == []


def test_failed_reextract_keeps_previous_destination(tmp_path):
    dest = tmp_path / "raw" / "fma_small"
    dest.mkdir(parents=True)
    (dest / "tracks.csv").write_bytes(FILES["tracks.csv"])
    tampered = checksums_text(FILES).replace(hashlib.sha1(FILES["tracks.csv"]).hexdigest(), "f" * 40)
    zip_path = build_zip(tmp_path / "fma_small.zip", FILES, tampered)
    with pytest.raises(ArchiveError, match="member fma_small/tracks.csv: SHA1 mismatch"):
        extract_verified(zip_path, dest, root_name="fma_small")
    assert [p.name for p in dest.iterdir()] == ["tracks.csv"]
    assert leftovers(dest.parent) == []
