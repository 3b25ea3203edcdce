"""SHA1 digests of files (archives, manifests), read in chunks so that multi-GB files fit in memory."""

from __future__ import annotations

import hashlib
import os

CHUNK_BYTES = 4 * 1024 * 1024  # also download.py's transfer and copy unit


def sha1_of(path: str | os.PathLike) -> str:
    """SHA1 hex digest of a file."""
    digest = hashlib.sha1()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
