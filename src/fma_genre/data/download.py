"""Fetch the FMA archives from the official server, a mirror or a local folder, and verify them.

An archive is written to `<dest>.part` and renamed onto `<dest>` only once its SHA1 matches,
so `<dest>` is always a verified archive. HTTP downloads resume from the `.part` file, both
across retries within one call and across runs.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from fma_genre.io.digests import CHUNK_BYTES, sha1_of

log = logging.getLogger(__name__)

OFFICIAL_BASE_URL = "https://os.unil.cloud.switch.ch/fma/"
OFFICIAL_SHA1 = {
    "fma_metadata.zip": "f0df49ffe5f2a6008d7dc83c6915b31835dfe733",
    "fma_small.zip": "ade154f733639d52e35e32f5593efe5be76c6d70",
    "fma_medium.zip": "c67b69ea232021025fca9231fc1c7c1a063ab50b",
    "fma_large.zip": "497109f4dd721066b5ce5e5f250ec604dc78939e",
}

# `sha1sum` output: 40 hex digits, then two spaces (text mode) or a space and `*` (binary mode).
_SHA1SUM_LINE = re.compile(r"^([0-9a-fA-F]{40}) [ *](.+)$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED_RANGE = re.compile(r"^bytes \*/(\d+)$")


class DownloadError(RuntimeError):
    """The archive could not be fetched (missing, refused, or the network kept failing)."""


class ChecksumMismatch(RuntimeError):
    """The fetched archive's SHA1 differs from the expected one; nothing was kept."""


class _BadTransfer(Exception):
    """A retryable failure the network stack does not raise itself (short body, wrong range)."""


def parse_sha1sums(text: str, origin: str) -> dict[str, str]:
    """Parse `sha1  name` lines into {name: lowercase sha1}; `origin` names the source in errors."""
    sums = {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _SHA1SUM_LINE.match(line)
        if match is None:
            raise ValueError(f"{origin}:{line_number}: not a `sha1  name` line: {line!r}")
        sums[match.group(2)] = match.group(1).lower()
    return sums


def read_sha1sums(path: str | os.PathLike) -> dict[str, str]:
    """Read a checksums file in `sha1sum` format (`sha1  name`) into {name: lowercase sha1}."""
    return parse_sha1sums(Path(path).read_text(), str(path))


def is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in ("http", "https")


def archive_url(base_url: str, name: str) -> str:
    return base_url.rstrip("/") + "/" + urllib.parse.quote(name)


def fetch_archive(
    source: str,
    name: str,
    dest: str | os.PathLike,
    expected_sha1: str,
    *,
    retries: int = 5,
    timeout: float = 60,
    backoff: float = 2.0,
) -> Path:
    """Fetch archive `name` from `source` to `dest` and verify its SHA1; return `dest`.

    `source` is an http(s) base URL or a local directory holding `name`. For HTTP, `retries` is
    how many consecutive failed attempts (network errors, truncated transfers, 5xx) are retried,
    waiting `backoff`, `2 * backoff`, `4 * backoff`... seconds; an attempt that grew the `.part`
    file resets the count, so a long download over a flaky link keeps resuming. `timeout` is
    per socket operation.
    Raises `ChecksumMismatch` (after deleting the download) or `DownloadError`.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    expected_sha1 = expected_sha1.lower()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        # A stale `dest` that no longer matches must not survive to be trusted by a later run.
        if sha1_of(dest) == expected_sha1:
            log.info("%s is already present and verified", dest)
            return dest
        log.warning("%s exists but its SHA1 is not %s: fetching it again", dest, expected_sha1)
        dest.unlink()

    if is_url(source):
        origin = archive_url(source, name)
        _download_resumable(origin, part, name, retries=retries, timeout=timeout, backoff=backoff)
    else:
        origin = str(Path(source) / name)
        _copy_local(Path(origin), part, name)

    log.info("verifying SHA1 of %s", part)
    actual_sha1 = sha1_of(part)
    if actual_sha1 != expected_sha1:
        part.unlink()
        raise ChecksumMismatch(
            f"{name}: SHA1 mismatch: expected {expected_sha1}, found {actual_sha1} "
            f"(source {origin}); the partial download was deleted"
        )
    os.replace(part, dest)
    log.info("%s: SHA1 %s verified, saved as %s", name, actual_sha1, dest)
    return dest


def _copy_local(path: Path, part: Path, name: str) -> None:
    if not path.is_file():
        raise DownloadError(f"{name}: local source file not found: {path}")
    log.info("copying %s to %s", path, part)
    with open(path, "rb") as src, open(part, "wb") as out, _progress(name, path.stat().st_size, 0) as bar:
        while chunk := src.read(CHUNK_BYTES):
            out.write(chunk)
            bar.update(len(chunk))
        _flush_to_disk(out)


def _download_resumable(
    url: str, part: Path, name: str, *, retries: int, timeout: float, backoff: float
) -> None:
    failures = 0
    while True:
        size_before = part.stat().st_size if part.exists() else 0
        try:
            _download_attempt(url, part, name, timeout)
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise DownloadError(f"{name}: not found at {url} (HTTP 404)") from exc
            if exc.code == 416:
                if _part_is_whole_file(exc, size_before):
                    log.info("%s already holds the whole file", part)
                    return
                log.warning("%s does not fit the remote file: starting over", part)
                part.unlink()
                error: Exception = exc
            elif exc.code < 500:
                raise DownloadError(
                    f"{name}: the server refused {url}: HTTP {exc.code} {exc.reason}"
                ) from exc
            else:
                error = exc
        except (OSError, http.client.HTTPException, _BadTransfer) as exc:
            # URLError, timeouts and connection resets are OSErrors; IncompleteRead is an HTTPException.
            error = exc
        size_after = part.stat().st_size if part.exists() else 0
        failures = 0 if size_after > size_before else failures + 1
        if failures > retries:
            raise DownloadError(
                f"{name}: giving up on {url} after {failures} attempts without progress: {error}"
            ) from error
        delay = backoff * 2 ** max(failures - 1, 0)
        log.warning(
            "%s: download interrupted at %d bytes (%s); resuming in %.1f s", name, size_after, error, delay
        )
        time.sleep(delay)


def _download_attempt(url: str, part: Path, name: str, timeout: float) -> None:
    """One request: append to `part` if the server honours the Range, else rewrite it from byte 0."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        content_length = response.headers.get("Content-Length")
        remaining = int(content_length) if content_length is not None else None
        if response.status == 206:
            content_range = response.headers.get("Content-Range")
            if _range_start(content_range) != offset:
                part.unlink()
                raise _BadTransfer(
                    f"asked for bytes {offset}- but the server sent {content_range}; starting over"
                )
            log.info("resuming %s at byte %d", url, offset)
            mode = "ab"
        else:
            if offset:
                log.info("%s does not resume at byte %d: downloading from the start", url, offset)
            offset, mode = 0, "wb"
            log.info("downloading %s to %s", url, part)
        total = offset + remaining if remaining is not None else None
        received = 0
        with open(part, mode) as out, _progress(name, total, offset) as bar:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            _flush_to_disk(out)
    if remaining is not None and received < remaining:
        raise _BadTransfer(f"received {received} of {remaining} bytes")


def _range_start(content_range: str | None) -> int | None:
    match = _CONTENT_RANGE.match(content_range or "")
    return int(match.group(1)) if match else None


def _part_is_whole_file(error: urllib.error.HTTPError, part_size: int) -> bool:
    """A 416 answer to `Range: bytes=N-` with `Content-Range: bytes */N` means nothing is left to fetch."""
    match = _UNSATISFIED_RANGE.match(error.headers.get("Content-Range", "") if error.headers else "")
    return match is not None and int(match.group(1)) == part_size


def _progress(name: str, total: int | None, initial: int) -> tqdm:
    return tqdm(
        total=total,
        initial=initial,
        desc=name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        mininterval=1.0,
    )


def _flush_to_disk(stream) -> None:
    # The rename onto `dest` must not outlive the bytes it points to after a crash.
    stream.flush()
    os.fsync(stream.fileno())
