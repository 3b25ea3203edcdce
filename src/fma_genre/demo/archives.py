"""The demo's archives, packed exactly like the real FMA ones: `fma_metadata.zip` (README.txt,
checksums, the real genres.csv and the catalogue's tracks.csv), `fma_small.zip` (README.txt,
checksums, NNN/NNNNNN.mp3) and a `SHA1SUMS` of the two, so that the whole pipeline runs offline
on CPU in minutes. The same arguments give byte-identical archives, whatever the number of workers.

    python -m fma_genre.demo.archives OUT_DIR [--tracks-per-genre N] [--seed N] [--workers N]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.resources
import io
import logging
import multiprocessing
import zipfile
from collections.abc import Iterator
from pathlib import Path

from fma_genre.demo.catalogue import Catalogue, build_catalogue
from fma_genre.demo.synthesis import SHORT_CLIP_SECONDS, ClipJob, render_clip
from fma_genre.io.atomic import atomic_path, write_text

log = logging.getLogger(__name__)

ZIP_DATE_TIME = (2017, 4, 1, 0, 0, 0)  # fixed member dates keep the archives byte-identical across runs


METADATA_ARCHIVE = "fma_metadata.zip"


AUDIO_ARCHIVE = "fma_small.zip"


SHA1SUMS = "SHA1SUMS"


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _add_member(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_BZIP2
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def _readme(title: str, tracks_per_genre: int, seed: int, clip_seconds: float) -> bytes:
    return (
        f"{title}\n\n"
        "SYNTHETIC DEMO DATA, not the Free Music Archive: written by fma_genre.demo with\n"
        f"tracks_per_genre={tracks_per_genre}, seed={seed}, clip_seconds={clip_seconds:g}.\n"
        "Packed like the real FMA archives (https://github.com/mdeff/fma) so that the\n"
        "pipeline runs end to end offline. genres.csv is the real FMA file (CC BY 4.0).\n"
    ).encode()


def _write_zip(path: Path, members: Iterator[tuple[str, bytes]]) -> str:
    """Write the (name, data) members into a BZIP2 zip atomically; return the zip's sha1."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w") as archive:
            for name, data in members:
                _add_member(archive, name, data)
        sha1 = _sha1(tmp.read_bytes())
    return sha1


def _metadata_members(catalogue: Catalogue, readme: bytes) -> Iterator[tuple[str, bytes]]:
    buffer = io.StringIO()
    catalogue.tracks.to_csv(buffer)
    data_files = {
        "tracks.csv": buffer.getvalue().encode(),
        "genres.csv": importlib.resources.files("fma_genre").joinpath("resources/genres.csv").read_bytes(),
    }
    yield "fma_metadata/README.txt", readme
    # Like the real archive's, the checksums cover the data files, not the README.
    yield (
        "fma_metadata/checksums",
        "".join(f"{_sha1(data)}  {name}\n" for name, data in data_files.items()).encode(),
    )
    for name, data in data_files.items():
        yield f"fma_metadata/{name}", data


def _audio_members(clip_jobs: list[ClipJob], readme: bytes, workers: int) -> Iterator[tuple[str, bytes]]:
    yield "fma_small/README.txt", readme
    checksum_lines = []
    with multiprocessing.Pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        # In track order whatever the workers, so the archive's bytes do not depend on them.
        clips = pool.imap(render_clip, clip_jobs) if pool else map(render_clip, clip_jobs)
        for done, (job, mp3) in enumerate(zip(clip_jobs, clips), start=1):
            name = f"{job.track_id:06d}"
            relative = f"{name[:3]}/{name}.mp3"
            checksum_lines.append(f"{_sha1(mp3)}  {relative}\n")
            yield f"fma_small/{relative}", mp3
            if done % 50 == 0 or done == len(clip_jobs):
                log.info("%d/%d clips rendered", done, len(clip_jobs))
    yield "fma_small/checksums", "".join(checksum_lines).encode()


def write_demo_archives(
    out_dir: str | Path,
    *,
    tracks_per_genre: int = 24,
    seed: int = 0,
    clip_seconds: float = 30.0,
    workers: int = 1,
) -> dict[str, str]:
    """Write fma_metadata.zip, fma_small.zip and SHA1SUMS into `out_dir`; return {archive: sha1}.

    Deterministic: the same arguments give byte-identical files whatever `workers` is.
    """
    if clip_seconds <= SHORT_CLIP_SECONDS:
        raise ValueError(
            f"clip_seconds must exceed the broken short clip's {SHORT_CLIP_SECONDS} s, got {clip_seconds}"
        )
    out_dir = Path(out_dir)
    catalogue = build_catalogue(tracks_per_genre, seed, clip_seconds)
    log.info(
        "demo dataset: %d tracks (%d with clips of %g s), seed %d, %d workers, into %s",
        len(catalogue.tracks),
        len(catalogue.clip_jobs),
        clip_seconds,
        seed,
        workers,
        out_dir,
    )
    sha1s = {
        METADATA_ARCHIVE: _write_zip(
            out_dir / METADATA_ARCHIVE,
            _metadata_members(
                catalogue, _readme("FMA metadata (synthetic demo)", tracks_per_genre, seed, clip_seconds)
            ),
        ),
        AUDIO_ARCHIVE: _write_zip(
            out_dir / AUDIO_ARCHIVE,
            _audio_members(
                catalogue.clip_jobs,
                _readme("fma_small (synthetic demo)", tracks_per_genre, seed, clip_seconds),
                workers,
            ),
        ),
    }
    write_text(out_dir / SHA1SUMS, "".join(f"{sha1}  {name}\n" for name, sha1 in sha1s.items()))
    return sha1s


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "out_dir", type=Path, help="folder to write fma_metadata.zip, fma_small.zip and SHA1SUMS into"
    )
    parser.add_argument("--tracks-per-genre", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clip-seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=1, help="processes synthesising and encoding clips")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sha1s = write_demo_archives(
        args.out_dir,
        tracks_per_genre=args.tracks_per_genre,
        seed=args.seed,
        clip_seconds=args.clip_seconds,
        workers=args.workers,
    )
    for name, sha1 in sha1s.items():
        print(f"{sha1}  {args.out_dir / name}")


if __name__ == "__main__":
    main()
