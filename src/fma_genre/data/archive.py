"""Unzip an FMA archive and verify every file against the archive's own `checksums` member.

The archives are BZIP2 zips whose members all lie under one top folder (`fma_small/...`).
They are extracted into a temporary sibling of the destination, hashed while being written, and
the folder is renamed into place only when every listed file matched: the destination is either
absent, the previous complete extraction, or the new complete one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import sys
import threading
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from fma_genre.data.download import parse_sha1sums
from fma_genre.io.atomic import atomic_directory

log = logging.getLogger(__name__)

CHECKSUMS_MEMBER = "checksums"
# Data files the pipeline reads; each must be covered by `checksums` (README.txt is not).
MUST_BE_LISTED_SUFFIXES = (".mp3", ".csv")
CHUNK_BYTES = 1024 * 1024
# What reading a damaged member raises: bad headers or CRC (BadZipFile), a stream cut short
# (EOFError), undecodable BZIP2 (OSError) or DEFLATE (zlib.error) data.
_CORRUPT_MEMBER_ERRORS = (zipfile.BadZipFile, EOFError, OSError, zlib.error)


class ArchiveError(RuntimeError):
    """The archive is incomplete, damaged, or its contents do not match its checksums."""


def extract_verified(
    zip_path: str | os.PathLike,
    dest_dir: str | os.PathLike,
    *,
    root_name: str,
    workers: int | None = None,
) -> None:
    """Extract the members under `root_name/` of `zip_path` so that they end up in `dest_dir`.

    Every file listed in `root_name/checksums` is SHA1-verified as it is written, and every
    mp3/csv member must be listed. An existing `dest_dir` is replaced only after success.
    `workers` threads decompress in parallel (BZIP2 and SHA1 release the GIL); default: up to 8.
    """
    zip_path, dest_dir = Path(zip_path), Path(dest_dir)
    workers = workers or min(8, os.cpu_count() or 1)
    members, expected_sha1 = _read_listing(zip_path, root_name)
    with atomic_directory(dest_dir) as staging_dir:
        log.info("extracting %d files of %s into %s", len(members), zip_path, staging_dir)
        _extract_members(zip_path, members, staging_dir, expected_sha1, root_name, workers)
    log.info(
        "%s: %d files extracted to %s, %d verified against %s",
        zip_path.name,
        len(members),
        dest_dir,
        len(expected_sha1),
        CHECKSUMS_MEMBER,
    )


def _read_listing(zip_path: Path, root_name: str) -> tuple[list[tuple[zipfile.ZipInfo, str]], dict[str, str]]:
    """Return the file members as (info, path relative to the root) and the checksums they must match."""
    checksums_name = f"{root_name}/{CHECKSUMS_MEMBER}"
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise ArchiveError(
            f"{zip_path} is not a complete zip archive: {exc}; {zip_path.stat().st_size} bytes found "
            "(truncated download?)"
        ) from exc
    with archive:
        infos = archive.infolist()
        try:
            checksums_info = archive.getinfo(checksums_name)
        except KeyError:
            raise ArchiveError(
                f"{zip_path}: has no {checksums_name} member to verify its files against"
            ) from None
        checksums_text = b"".join(_member_chunks(archive, checksums_info, zip_path)).decode()
    expected_sha1 = parse_sha1sums(checksums_text, f"{zip_path}:{checksums_name}")

    members = []
    for info in infos:
        relative = _relative_name(zip_path, info.filename, root_name)
        if relative is None or info.is_dir():
            continue
        if relative not in expected_sha1 and relative.lower().endswith(MUST_BE_LISTED_SUFFIXES):
            raise ArchiveError(f"{zip_path}: member {info.filename} is not listed in {checksums_name}")
        members.append((info, relative))
    missing = sorted(set(expected_sha1) - {relative for _, relative in members})
    if missing:
        raise ArchiveError(
            f"{zip_path}: {len(missing)} files listed in {checksums_name} are missing from the archive, "
            f"e.g. {missing[0]}"
        )
    return members, expected_sha1


def _relative_name(zip_path: Path, member_name: str, root_name: str) -> str | None:
    """Path of a member below the top folder (None for the top folder itself); refuse anything outside it."""
    path = PurePosixPath(member_name)
    if path.is_absolute() or ".." in path.parts or path.parts[:1] != (root_name,):
        raise ArchiveError(f"{zip_path}: member {member_name} lies outside the top folder {root_name}/")
    relative = PurePosixPath(*path.parts[1:])
    return str(relative) if relative.parts else None


def _extract_members(
    zip_path: Path,
    members: list[tuple[zipfile.ZipInfo, str]],
    staging_dir: Path,
    expected_sha1: dict[str, str],
    root_name: str,
    workers: int,
) -> None:
    pending: queue.SimpleQueue[tuple[zipfile.ZipInfo, str]] = queue.SimpleQueue()
    for member in members:
        pending.put(member)
    stop = threading.Event()
    errors: list[BaseException] = []
    progress_lock = threading.Lock()

    def drain_queue(progress: tqdm) -> None:
        try:
            # One ZipFile per thread: each has its own file position to read from.
            with zipfile.ZipFile(zip_path) as archive:
                while not stop.is_set():
                    try:
                        info, relative = pending.get_nowait()
                    except queue.Empty:
                        return
                    _extract_member(
                        archive, info, zip_path, staging_dir / relative, expected_sha1.get(relative), stop
                    )
                    with progress_lock:
                        progress.update(1)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    with tqdm(total=len(members), desc=root_name, unit="file", file=sys.stderr, mininterval=1.0) as progress:
        threads = [
            threading.Thread(target=drain_queue, args=(progress,), daemon=True) for _ in range(workers)
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        finally:
            # Also on KeyboardInterrupt: let the workers stop before the staging folder is deleted.
            stop.set()
            for thread in threads:
                thread.join()
    if errors:
        raise errors[0]


def _extract_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    zip_path: Path,
    target: Path,
    expected_sha1: str | None,
    stop: threading.Event,
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1()
    with open(target, "wb") as out:
        for chunk in _member_chunks(archive, info, zip_path):
            if stop.is_set():
                return
            digest.update(chunk)
            out.write(chunk)
    actual_sha1 = digest.hexdigest()
    if expected_sha1 is not None and actual_sha1 != expected_sha1:
        raise ArchiveError(
            f"{zip_path}: member {info.filename}: SHA1 mismatch: expected {expected_sha1}, found {actual_sha1}"
        )


def _member_chunks(archive: zipfile.ZipFile, info: zipfile.ZipInfo, zip_path: Path) -> Iterator[bytes]:
    """Decompressed bytes of one member; damage surfaces as ArchiveError (write errors are not caught here)."""
    try:
        with archive.open(info) as source:
            while chunk := source.read(CHUNK_BYTES):
                yield chunk
    except _CORRUPT_MEMBER_ERRORS as exc:
        raise ArchiveError(
            f"{zip_path}: member {info.filename} is damaged: {exc!r} (truncated or corrupt download?)"
        ) from exc
