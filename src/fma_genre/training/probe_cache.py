"""The probe's cache: the frozen backbone's pooled outputs (every layer, mean-pooled over the
valid frames: `probe.pooled_layers`) of every scoring window of the training and validation
splits, on disk.

A DAG target (rule probe_cache), computed once per pretrained weights, features and crop length,
not per seed: every seed of every probe experiment with that crop length trains its head from
it. At full size a window is 25 layers x 1024 floats, so fma_large's splits hold some 30 GB in
float32: the cache is float16, in shards of `SHARD_WINDOWS` windows (~50 MB), each written by
the process that computed it and read back memory-mapped a batch at a time (mapped for that
read only), so that a probe training's memory does not grow with the number of tracks.

    index.json                      what it was computed from, its shape, each split's shards
    <split>-window-tracks.npy       each window's track (its index in the split's tracks)
    <split>-<rank>-<number>.npy     (windows, layers, hidden) float16, windows in order
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fma_genre.features.crops import evaluation_windows, frames_of
from fma_genre.features.splits import SplitTracks, read_split
from fma_genre.io.atomic import atomic_directory
from fma_genre.io.digests import sha1_of
from fma_genre.models.classifier import load_classifier
from fma_genre.models.pretrained import read_source
from fma_genre.runtime.devices import best_device
from fma_genre.runtime.processes import Processes, barrier, from_main, gather_in_rank_order, join, leave
from fma_genre.scoring.windows import outputs_by_batch
from fma_genre.training.probe import pooled_layers

log = logging.getLogger(__name__)

INDEX_FILE = "index.json"
SPLITS = ("training", "validation")
SHARD_WINDOWS = 1024


class ProbeCacheMismatch(ValueError):
    """A probe cache made from other features, weights or windows than the training's."""


class ShardWriter:
    """Consecutive windows' pooled layers into float16 shards of `SHARD_WINDOWS`, as they come."""

    def __init__(self, folder: Path, prefix: str):
        self.folder, self.prefix = folder, prefix
        self.buffer: list[np.ndarray] = []
        self.shards: list[tuple[str, int]] = []  # (file name, windows)

    def add(self, layers: torch.Tensor) -> None:
        self.buffer.append(layers.to(torch.float16).numpy())
        while sum(len(rows) for rows in self.buffer) >= SHARD_WINDOWS:
            rows = np.concatenate(self.buffer)
            self.write(rows[:SHARD_WINDOWS])
            self.buffer = [rows[SHARD_WINDOWS:]]

    def close(self) -> list[tuple[str, int]]:
        rest = [rows for rows in self.buffer if len(rows)]
        if rest:
            self.write(np.concatenate(rest))
        self.buffer = []
        return self.shards

    def write(self, rows: np.ndarray) -> None:
        name = f"{self.prefix}-{len(self.shards):04d}.npy"
        np.save(self.folder / name, rows)
        self.shards.append((name, len(rows)))


def write_split(
    model,
    tracks: SplitTracks,
    split: str,
    window_frames: int,
    batch_size: int,
    device: torch.device,
    folder: Path,
    processes: Processes,
) -> dict:
    """This process's part of `split`'s windows into shards; every process's shards, in window
    order, and the split's counts (what index.json records of it)."""
    writer = ShardWriter(folder, f"{split}-{processes.rank:02d}")
    for layers, _ in outputs_by_batch(
        lambda features, mask: pooled_layers(model, features, mask),
        tracks.paths,
        tracks.n_frames,
        window_frames,
        batch_size,
        device,
        desc=f"caching {split}",
        processes=processes,
    ):
        writer.add(layers)
    shards = [shard for part in gather_in_rank_order(writer.close(), processes) for shard in part]
    windows = evaluation_windows(tracks.n_frames, window_frames)
    if processes.is_main:
        write_window_tracks(folder, split, windows)
    return dict(tracks=len(tracks.track_ids), windows=len(windows), shards=shards)


def write_window_tracks(folder: Path, split: str, windows: list) -> None:
    """<split>-window-tracks.npy: each of the split's windows' track."""
    np.save(folder / f"{split}-window-tracks.npy", np.array([track for track, _, _ in windows]))


def write_probe_cache(
    manifest_csv: str,
    pretrained_dir: str,
    cache_dir: str,
    *,
    window_seconds: float,
    batch_size: int,
    threads: int,
) -> None:
    """The cache of the training and validation splits (the rule's work; under a launcher each
    process computes and writes a part)."""
    torch.set_num_threads(threads)
    device, device_name = best_device()
    processes = join(device)
    # The backbone as training loads it (its head, on whatever labels, is not used here).
    model = load_classifier(pretrained_dir, ["unused"], device=device).eval()
    window_frames = frames_of(window_seconds)
    log.info("caching the backbone's pooled layers on %s x %d processes", device_name, processes.world_size)
    with atomic_directory(cache_dir) if processes.is_main else contextlib.nullcontext() as staging:
        folder = Path(from_main(str(staging) if processes.is_main else None, processes))
        splits = {
            split: write_split(
                model,
                read_split(manifest_csv, split),
                split,
                window_frames,
                batch_size,
                device,
                folder,
                processes,
            )
            for split in SPLITS
        }
        if processes.is_main:
            write_index(folder, manifest_csv, pretrained_dir, window_frames, model.config, splits)
        barrier(processes)  # every shard is written before the folder is renamed
    log.info("%s: %s", cache_dir, ", ".join(f"{s}: {v['windows']} windows" for s, v in splits.items()))
    leave(processes)


def write_index(folder: Path, manifest_csv, pretrained_dir, window_frames: int, config, splits: dict) -> None:
    """index.json: what the cache was computed from (checked when it is opened), its shape, and
    `splits` (each split's counts and shards, as `write_split` returns them)."""
    index = dict(
        manifest_sha1=sha1_of(manifest_csv),
        pretrained_commit=read_source(pretrained_dir)["commit"],
        window_frames=window_frames,
        layers=config.num_hidden_layers + 1,
        hidden=config.hidden_size,
        splits=splits,
    )
    (folder / INDEX_FILE).write_text(json.dumps(index, indent=1))


@dataclass
class CachedSplit:
    """One split of a probe cache, read a batch of windows at a time."""

    folder: Path
    files: list[str]
    starts: np.ndarray  # (shards + 1,) each shard's first window, and the total
    window_tracks: torch.Tensor  # (windows,) each window's track index
    shape: tuple[int, int]  # (layers, hidden)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def read(self, windows: np.ndarray) -> torch.Tensor:
        """(len(windows), layers, hidden) float32: the pooled layers of these windows."""
        windows = np.asarray(windows)
        out = np.empty((len(windows), *self.shape), dtype=np.float16)
        shard_of = np.searchsorted(self.starts, windows, side="right") - 1
        for shard in np.unique(shard_of):
            chosen = shard_of == shard
            rows = np.load(self.folder / self.files[shard], mmap_mode="r")  # mapped for this read only
            out[chosen] = rows[windows[chosen] - self.starts[shard]]
            del rows
        return torch.from_numpy(out).float()


def open_probe_cache(
    cache_dir: str | Path, manifest_csv, pretrained_dir, window_frames: int, tracks: dict[str, SplitTracks]
) -> tuple[CachedSplit, CachedSplit]:
    """The training and validation splits of the cache, checked to be of this manifest, these
    weights, windows and tracks."""
    folder = Path(cache_dir)
    index = json.loads((folder / INDEX_FILE).read_text())
    expected = dict(
        manifest_sha1=sha1_of(manifest_csv),
        pretrained_commit=read_source(pretrained_dir)["commit"],
        window_frames=window_frames,
    ) | {f"{split} tracks": len(tracks[split].track_ids) for split in SPLITS}
    found = {name: index.get(name) for name in expected} | {
        f"{split} tracks": index["splits"][split]["tracks"] for split in SPLITS
    }
    if found != expected:
        differences = "; ".join(
            f"{k}: {found[k]!r}, expected {v!r}" for k, v in expected.items() if found[k] != v
        )
        raise ProbeCacheMismatch(f"{folder} is not this training's probe cache ({differences}): rebuild it")
    return tuple(_cached_split(folder, index, split) for split in SPLITS)


def _cached_split(folder: Path, index: dict, split: str) -> CachedSplit:
    shards = index["splits"][split]["shards"]
    return CachedSplit(
        folder,
        [name for name, _ in shards],
        np.concatenate([[0], np.cumsum([windows for _, windows in shards], dtype=np.int64)]),
        torch.from_numpy(np.load(folder / f"{split}-window-tracks.npy")),
        (index["layers"], index["hidden"]),
    )
