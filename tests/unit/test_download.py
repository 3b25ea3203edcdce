"""fetch_archive against a local HTTP server (Range support, cut connections) and a local folder."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import threading
from pathlib import Path

import pytest

from fma_genre.data.download import (
    OFFICIAL_SHA1,
    ChecksumMismatch,
    DownloadError,
    fetch_archive,
    read_sha1sums,
    sha1_of,
)

REAL_METADATA_CHECKSUMS = (
    Path(__file__).resolve().parents[3] / "shared" / "fma-samples" / "fma_metadata" / "checksums"
)
PAYLOAD = os.urandom(3 * 1024 * 1024 + 123)  # spans several read chunks
PAYLOAD_SHA1 = hashlib.sha1(PAYLOAD).hexdigest()
WRONG_SHA1 = "0" * 40


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `server.files`, honours `Range: bytes=N-` unless `server.ranges` is off, and cuts the
    connection after `server.cut_after[k]` body bytes on the k-th request (None: no cut)."""

    def do_GET(self) -> None:
        server = self.server
        range_header = self.headers.get("Range")
        server.requests.append({"path": self.path, "range": range_header})
        body = server.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and server.ranges:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        request_index = len(server.requests) - 1
        cut = server.cut_after[request_index] if request_index < len(server.cut_after) else None
        if cut is None:
            self.wfile.write(body[start:])
        else:
            self.wfile.write(body[start : start + cut])
            self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.files = {"fma/fma_small.zip": PAYLOAD}
    httpd.requests = []
    httpd.cut_after = []
    httpd.ranges = True
    httpd.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/fma/"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_http_download_verifies_and_renames(server, tmp_path):
    dest = tmp_path / "raw" / "fma_small.zip"
    assert fetch_archive(server.base_url, "fma_small.zip", dest, PAYLOAD_SHA1, backoff=0) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "raw" / "fma_small.zip.part").exists()
    assert server.requests == [{"path": "/fma/fma_small.zip", "range": None}]


def test_cut_transfer_resumes_with_range(server, tmp_path):
    server.cut_after = [1_000_000, 700_000]
    dest = tmp_path / "fma_small.zip"
    fetch_archive(server.base_url, "fma_small.zip", dest, PAYLOAD_SHA1, backoff=0)
    assert [r["range"] for r in server.requests] == [None, "bytes=1000000-", "bytes=1700000-"]
    assert sha1_of(dest) == PAYLOAD_SHA1


def test_leftover_part_from_an_earlier_run_is_resumed(server, tmp_path):
    dest = tmp_path / "fma_small.zip"
    (tmp_path / "fma_small.zip.part").write_bytes(PAYLOAD[:12345])
    fetch_archive(server.base_url, "fma_small.zip", dest, PAYLOAD_SHA1, backoff=0)
    assert server.requests[0]["range"] == "bytes=12345-"
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_is_accepted_when_server_answers_416(server, tmp_path):
    dest = tmp_path / "fma_small.zip"
    (tmp_path / "fma_small.zip.part").write_bytes(PAYLOAD)
    fetch_archive(server.base_url, "fma_small.zip", dest, PAYLOAD_SHA1, backoff=0)
    assert len(server.requests) == 1
    assert dest.read_bytes() == PAYLOAD


def test_server_without_range_support_restarts_from_zero(server, tmp_path):
    server.ranges = False
    dest = tmp_path / "fma_small.zip"
    (tmp_path / "fma_small.zip.part").write_bytes(b"stale bytes that are not the payload")
    fetch_archive(server.base_url, "fma_small.zip", dest, PAYLOAD_SHA1, backoff=0)
    assert server.requests[0]["range"] == "bytes=36-"
    assert dest.read_bytes() == PAYLOAD


def test_retries_without_progress_give_up(server, tmp_path):
    server.cut_after = [0, 0, 0, 0]
    dest = tmp_path / "fma_small.zip"
    with pytest.raises(
        DownloadError, match=r"giving up on http://127\.0\.0\.1:\d+/fma/fma_small\.zip after 3"
    ):
        fetch_archive(server.base_url, "fma_small.zip", dest, PAYLOAD_SHA1, retries=2, backoff=0)
    assert len(server.requests) == 3
    assert not dest.exists()


def test_http_checksum_mismatch_deletes_everything(server, tmp_path):
    dest = tmp_path / "fma_small.zip"
    with pytest.raises(ChecksumMismatch) as excinfo:
        fetch_archive(server.base_url, "fma_small.zip", dest, WRONG_SHA1, backoff=0)
    message = str(excinfo.value)
    assert message.startswith(f"fma_small.zip: SHA1 mismatch: expected {WRONG_SHA1}, found {PAYLOAD_SHA1}")
    assert server.base_url + "fma_small.zip" in message
    assert not dest.exists()
    assert not (tmp_path / "fma_small.zip.part").exists()


def test_http_404_names_the_url(server, tmp_path):
    with pytest.raises(
        DownloadError, match=r"not found at http://127\.0\.0\.1:\d+/fma/fma_large\.zip \(HTTP 404\)"
    ):
        fetch_archive(server.base_url, "fma_large.zip", tmp_path / "fma_large.zip", WRONG_SHA1, backoff=0)
    assert list(tmp_path.iterdir()) == []


def test_local_folder_source(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "fma_small.zip").write_bytes(PAYLOAD)
    dest = tmp_path / "raw" / "fma_small.zip"
    fetch_archive(str(mirror), "fma_small.zip", dest, PAYLOAD_SHA1.upper())
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in dest.parent.iterdir()) == ["fma_small.zip"]


def test_local_folder_mismatch_deletes_everything(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "fma_small.zip").write_bytes(PAYLOAD)
    dest = tmp_path / "raw" / "fma_small.zip"
    with pytest.raises(
        ChecksumMismatch, match=f"expected {WRONG_SHA1}, found {PAYLOAD_SHA1} \\(source {mirror}"
    ):
        fetch_archive(str(mirror), "fma_small.zip", dest, WRONG_SHA1)
    assert list(dest.parent.iterdir()) == []


def test_local_folder_missing_file_names_the_path(tmp_path):
    with pytest.raises(DownloadError, match=f"local source file not found: {tmp_path / 'fma_small.zip'}"):
        fetch_archive(str(tmp_path), "fma_small.zip", tmp_path / "raw" / "fma_small.zip", WRONG_SHA1)


def test_stale_dest_with_wrong_sha1_is_replaced(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "fma_small.zip").write_bytes(PAYLOAD)
    dest = tmp_path / "fma_small.zip"
    dest.write_bytes(b"an older, different archive")
    fetch_archive(str(mirror), "fma_small.zip", dest, PAYLOAD_SHA1)
    assert dest.read_bytes() == PAYLOAD


def test_read_sha1sums_real_metadata_checksums():
    sums = read_sha1sums(REAL_METADATA_CHECKSUMS)
    assert len(sums) == 10
    assert sums["genres.csv"] == "d2f3a75be03441d324ef9815d23bad33d149c831"
    assert sums["not_found.pickle"] == "56efea07a04d527305b871d49c9d42745f77ec8a"


def test_read_sha1sums_rejects_malformed_lines(tmp_path):
    sums_file = tmp_path / "SHA1SUMS"
    sums_file.write_text(f"{OFFICIAL_SHA1['fma_small.zip']}  fma_small.zip\n\nnot-a-sha1  fma_large.zip\n")
    with pytest.raises(ValueError, match=r"SHA1SUMS:3: not a `sha1  name` line"):
        read_sha1sums(sums_file)


def test_sha1_of_matches_hashlib(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(PAYLOAD)
    assert sha1_of(path) == PAYLOAD_SHA1
