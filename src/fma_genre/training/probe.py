"""Linear probe on a frozen backbone, trained on cached backbone outputs.

A frozen backbone's outputs do not depend on the head, so the backbone runs once per scoring
window (in eval mode) and the head trains on what it needs, for many epochs in seconds. With the
weighted layer sum, the projector and the mean pooling all linear, the head of
`Wav2Vec2BertForSequenceClassification` on each layer's output mean-pooled over the window's
valid frames is the same function as the head on the full sequence: the saved model (backbone +
trained head) scores exactly like the cache it was trained on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from fma_genre.features.splits import SplitTracks
from fma_genre.runtime.processes import Processes
from fma_genre.scoring.windows import window_outputs

log = logging.getLogger(__name__)


@dataclass
class PooledWindows:
    """Every scoring window of a split, as the head sees it."""

    layers: torch.Tensor  # (windows, hidden layers + 1, hidden size) float32
    window_tracks: torch.Tensor  # (windows,) track index


def pooled_layers(model, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(batch, layers, hidden) every layer's output, mean-pooled over the valid frames."""
    hidden = torch.stack(
        model.wav2vec2_bert(features, attention_mask=mask, output_hidden_states=True).hidden_states, dim=1
    )
    valid = model._get_feature_vector_attention_mask(hidden.shape[2], mask).to(hidden.dtype)
    return (hidden * valid[:, None, :, None]).sum(dim=2) / valid.sum(dim=1)[:, None, None]


def head_logits(model, layers: torch.Tensor) -> torch.Tensor:
    """The classification head on pooled layers: weighted layer sum, projector, classifier."""
    weights = torch.softmax(model.layer_weights, dim=-1)
    return model.classifier(model.projector((layers * weights[:, None]).sum(dim=1)))


def cache_split(
    model,
    tracks: SplitTracks,
    window_frames: int,
    batch_size: int,
    device: torch.device,
    threads: int,
    desc: str,
    stop: threading.Event | None = None,
    processes: Processes = Processes(),
) -> PooledWindows:
    """The pooled layers of every scoring window of `tracks`, computed once in eval mode (split
    between `processes`, every one of which gets them all)."""
    model.eval()
    layers, window_tracks = window_outputs(
        lambda features, mask: pooled_layers(model, features, mask),
        tracks.paths,
        tracks.n_frames,
        window_frames,
        batch_size,
        device,
        threads,
        desc=desc,
        stop=stop,
        processes=processes,
    )
    log.info(
        "%s: %d windows of %d tracks cached, %s floats each",
        desc,
        len(layers),
        len(tracks.track_ids),
        "x".join(map(str, layers.shape[1:])),
    )
    return PooledWindows(layers, window_tracks)


def random_window_batches(
    cache: PooledWindows, batch_size: int, rng: np.random.Generator, skip_batches: int
) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """One epoch: one random cached window of every track, tracks in random order, in batches
    of (head inputs, track indices); the first `skip_batches` are left out (a resumed epoch)."""
    tracks = cache.window_tracks.numpy()
    n_tracks = int(tracks.max()) + 1
    first = np.searchsorted(tracks, np.arange(n_tracks))  # windows are grouped by track
    count = np.bincount(tracks, minlength=n_tracks)
    chosen = first + rng.integers(0, count)
    order = chosen[rng.permutation(n_tracks)]
    for start in range(skip_batches * batch_size, n_tracks, batch_size):
        batch = torch.from_numpy(order[start : start + batch_size])
        yield {"layers": cache.layers[batch]}, cache.window_tracks[batch]
