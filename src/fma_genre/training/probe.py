"""Linear probe on a frozen backbone, trained on its cached outputs (`probe_cache.py`).

A frozen backbone's outputs do not depend on the head, so the backbone runs once per scoring
window (in eval mode) and the head trains on what it needs, for many epochs in seconds. With the
weighted layer sum, the projector and the mean pooling all linear, the head of
`Wav2Vec2BertForSequenceClassification` on each layer's output mean-pooled over the window's
valid frames is the same function as the head on the full sequence: the saved model (backbone +
trained head) scores exactly like the cache it was trained on.
"""

from __future__ import annotations

import numpy as np
import torch


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


class ProbeHead(torch.nn.Module):
    """The classifier's head alone, on pooled layers: what a probe trains (and DDP averages,
    with several processes), sharing its weights with the classifier."""

    def __init__(self, model):
        super().__init__()
        self.layer_weights, self.projector, self.classifier = (
            model.layer_weights,
            model.projector,
            model.classifier,
        )

    def forward(self, layers: torch.Tensor) -> torch.Tensor:
        return head_logits(self, layers)


def one_window_per_track(window_tracks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An epoch of a probe: one random window of every track (windows are grouped by track), the
    tracks in random order."""
    n_tracks = int(window_tracks.max()) + 1
    first = np.searchsorted(window_tracks, np.arange(n_tracks))
    chosen = first + rng.integers(0, np.bincount(window_tracks, minlength=n_tracks))
    return chosen[rng.permutation(n_tracks)]
