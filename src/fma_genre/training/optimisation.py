"""What a training step optimises: AdamW's parameter groups, the learning-rate schedule and the
per-label weights of the loss."""

from __future__ import annotations

import math

import numpy as np
import torch

from fma_genre.models.lora import is_backbone_parameter


def parameter_groups(
    model: torch.nn.Module, lr_backbone: float, lr_head: float, weight_decay: float
) -> list[dict]:
    """AdamW groups: backbone and head at their own learning rates; no decay on biases and norms."""
    groups = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            part = "backbone" if is_backbone_parameter(name) else "head"
            decays = param.ndim >= 2
            group = groups.setdefault(
                (part, decays),
                dict(
                    params=[],
                    lr=lr_backbone if part == "backbone" else lr_head,
                    weight_decay=weight_decay if decays else 0.0,
                    part=part,
                ),
            )
            group["params"].append(param)
    return list(groups.values())


def warmup_cosine(warmup_steps: int, total_steps: int):
    """Learning-rate factor: linear warm-up from 1/warmup_steps to 1, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def positive_weights(targets: np.ndarray, max_pos_weight: float) -> torch.Tensor:
    """n_negative / n_positive per label, within [1, max_pos_weight]: rare genres are not ignored."""
    n_positive = targets.sum(axis=0)
    ratio = (len(targets) - n_positive) / np.maximum(n_positive, 1)
    return torch.tensor(np.clip(ratio, 1.0, max_pos_weight), dtype=torch.float32)
