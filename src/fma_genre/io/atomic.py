"""Atomic file outputs: a reader never sees a half-written file, and an interrupted run leaves
only a temporary file that the next run ignores and overwrites."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

TEMPORARY_GLOB = ".*.tmp*"  # the names atomic_path and atomic_directory give their temporaries


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "", durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file lives in the same directory so that the final `os.replace` is atomic.
    `suffix` keeps an extension that a writer insists on (numpy appends `.npy` otherwise).
    `durable`: the file's data and then the rename are fsynced, so that after a crash or a
    node failure `path` holds either the old or the whole new content (checkpoints).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes files private; outputs are for everyone to read
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
        if durable:
            _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete what a killed writer left in `folder` (its temporaries); return what was removed."""
    removed = sorted(Path(folder).glob(TEMPORARY_GLOB))
    for leftover in removed:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    return removed


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; it replaces `path` if the block succeeds.

    An existing `path` is moved aside, not deleted, until the new folder is in place, and is put
    back if that rename fails. On failure the temporary folder is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield staging
        readable_by_all(staging)
        if not path.exists():
            os.rename(staging, path)
            return
        # A rename cannot replace a non-empty folder: park the old one on the same filesystem.
        discard = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
        try:
            os.rename(path, discard / path.name)
            try:
                os.rename(staging, path)
            except BaseException:
                os.rename(discard / path.name, path)
                raise
        finally:
            shutil.rmtree(discard, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def readable_by_all(folder: Path) -> None:
    """Files 0644 and folders 0755 throughout `folder`: mkdtemp makes it private, and some writers
    (safetensors' `save_pretrained`) make their files so."""
    os.chmod(folder, 0o755)
    for path in folder.rglob("*"):
        if not path.is_symlink():
            os.chmod(path, 0o755 if path.is_dir() else 0o644)


def link_directory(source: str | os.PathLike, dest: str | os.PathLike, skip: Iterable[str] = ()) -> None:
    """`dest` as a copy of the flat folder `source` but the names in `skip`, atomically: hard
    links where the file system allows (a 600 M-parameter model is 2.3 GB), copies where it
    does not."""
    skip = set(skip)
    with atomic_directory(dest) as staging:
        for item in Path(source).iterdir():
            if item.name in skip:
                continue
            try:
                os.link(item, staging / item.name)
            except OSError:
                shutil.copy2(item, staging / item.name)
