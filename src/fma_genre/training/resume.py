"""Resumable training state that fits a 600 M-parameter model.

`state_dir` holds two files, each written atomically and fsynced:
- `state.pt`: the model's trained weights, AdamW's state, the scheduler, the RNG states and the
  progress, once each (fine-tuning: about 3x the fp32 weights, weights plus AdamW's two
  moments; probe and LoRA: their trainable weights only), loaded with `weights_only=True`,
  memory-mapped. Written every `checkpoint_minutes` (checked after every step and epoch), when
  SIGTERM arrives and at the end: by time, not by epoch, since an fma_small epoch on one H100
  lasts about half a minute and the state of a fine-tuning weighs 7 GB.
- `best-epochNNNN.safetensors`: the trained weights of the best epoch so far, written just before
  a state that names a better epoch than the last; the one of an older best epoch is deleted
  once that state is written, so a crash between the two writes leaves both, and the state's
  epoch is loadable.
Both are bound to a key: everything that changes the result (settings, the manifest's SHA1, which
covers every feature file's content digest, the pretrained commit and the training code). A
state with another key (or in a format this code cannot read) is ignored, with a log line saying
why, and replaced by the new run's first checkpoint. Temporaries left by a killed writer are
removed at the next start; only the final names are ever loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from fma_genre.io.atomic import atomic_path, remove_temporaries

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"
BEST_GLOB = "best-epoch*.safetensors"
# What a state file this code cannot resume raises (another version's format, a damaged file);
# anything else, an I/O error say, is not a reason to start a long training afresh.
UNREADABLE = (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, ValueError)


def best_path(state_dir: Path, epoch: int) -> Path:
    return state_dir / f"best-epoch{epoch:04d}.safetensors"


def key_digest(key: dict) -> str:
    return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()


def prepare(state_dir: str | Path) -> Path:
    """Create `state_dir` and delete what an interrupted writer left in it."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    for leftover in remove_temporaries(state_dir):
        log.warning("removed %s, left by an interrupted checkpoint write", leftover)
    return state_dir


def load_state(state_dir: Path, key: dict) -> dict | None:
    """The saved state if it was made with `key`; None (and a log line saying why) otherwise."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    started = time.perf_counter()
    try:
        # Memory-mapped: the processes of a node share one copy of its pages (the page cache)
        # instead of each reading ~7 GB into its own memory.
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        saved_key = state["key"]
    except UNREADABLE as error:
        log.warning("ignoring %s, which cannot be read (%s): training starts afresh", path, error)
        return None
    if saved_key != key:
        changes = "; ".join(
            f"{name}: {saved_key.get(name)!r} then, {key.get(name)!r} now"
            for name in sorted(saved_key.keys() | key.keys())
            if saved_key.get(name) != key.get(name)
        )
        log.warning("ignoring %s, made by a run that differs in %s: training starts afresh", path, changes)
        return None
    log.info("loaded %s (%.1f GB) in %.1f s", path, path.stat().st_size / 1e9, time.perf_counter() - started)
    return state


def save_state(state_dir: Path, state: dict) -> tuple[int, float]:
    """Write `state` (which holds its `key`) atomically and durably; return (bytes, seconds)."""
    path = state_dir / STATE_FILE
    started = time.perf_counter()
    with atomic_path(path, durable=True) as tmp:
        torch.save(state, tmp)
    seconds = time.perf_counter() - started
    log.info("checkpoint: %s (%.2f GB) written in %.1f s", path, path.stat().st_size / 1e9, seconds)
    return path.stat().st_size, seconds


def trained_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights training changes (the model has no buffers). Frozen ones (probe: the backbone;
    lora: all but the adapters) are the pretrained commit's, which the key pins: a state need
    not hold them, and writing 2.3 GB after every few-second probe epoch would dominate it."""
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def load_trained_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Put `trained_weights` back; every trainable weight must be there, nothing else."""
    missing = set(trained_weights(model)) - set(weights)
    unexpected = model.load_state_dict(weights, strict=False).unexpected_keys
    if missing or unexpected:
        raise RuntimeError(f"saved weights lack {sorted(missing)[:3]} or have unknown {unexpected[:3]}")


def save_best(state_dir: Path, weights: dict[str, torch.Tensor], key: dict, epoch: int) -> None:
    """`trained_weights` of the best epoch so far, tagged with the run's key and the epoch."""
    weights = {name: tensor.contiguous() for name, tensor in weights.items()}
    with atomic_path(best_path(state_dir, epoch), durable=True) as tmp:
        save_file(weights, tmp, metadata={"key": key_digest(key), "epoch": str(epoch)})


def keep_only_best(state_dir: Path, epoch: int) -> None:
    """Delete the best weights of every epoch but `epoch` (call once a state names `epoch`)."""
    for path in state_dir.glob(BEST_GLOB):
        if path != best_path(state_dir, epoch):
            path.unlink()


def load_best(state_dir: Path, key: dict, epoch: int) -> dict[str, torch.Tensor]:
    """The best weights, checked to be this run's and of `epoch`."""
    path = best_path(state_dir, epoch)
    with safe_open(path, framework="pt") as best:
        metadata = best.metadata()
        if metadata != {"key": key_digest(key), "epoch": str(epoch)}:
            raise RuntimeError(
                f"{path} holds epoch {metadata.get('epoch')} of run {metadata.get('key')}, "
                f"expected epoch {epoch} of run {key_digest(key)}: delete {state_dir} and rerun"
            )
        return {name: best.get_tensor(name) for name in best.keys()}  # noqa: SIM118 - a file, not a dict


def clear(state_dir: Path) -> None:
    """Delete the state once the model is written: it is no longer needed (and it is large)."""
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    for path in state_dir.glob(BEST_GLOB):
        path.unlink()


def rng_states() -> dict:
    """torch's CPU and numpy's RNG states as tensors and plain values (`weights_only` loadable).
    Not the GPUs': every micro-batch reseeds them (`steps.seed_micro_batch`), and a state holding
    one per device could not be restored with fewer devices visible."""
    numpy_state = np.random.get_state(legacy=False)  # SpecAugment's time masks draw from it
    return {
        "torch": torch.get_rng_state(),
        "numpy_key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
        "numpy_pos": numpy_state["state"]["pos"],
        "numpy_has_gauss": numpy_state["has_gauss"],
        "numpy_gauss": numpy_state["gauss"],
    }


def set_rng_states(states: dict) -> None:
    """Put `rng_states` back. A state of an earlier version also holds each GPU's RNG state
    ("cuda"): ignored, whatever the number of devices now."""
    torch.set_rng_state(states["torch"])
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": states["numpy_key"].numpy().astype(np.uint32), "pos": states["numpy_pos"]},
            "has_gauss": states["numpy_has_gauss"],
            "gauss": states["numpy_gauss"],
        }
    )
