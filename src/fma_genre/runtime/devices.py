"""The device a training or scoring process computes on, and its mixed precision."""

from __future__ import annotations

import torch

from fma_genre.runtime.processes import local_rank


def best_device() -> tuple[torch.device, str]:
    """This process's visible CUDA device if any (CUDA_VISIBLE_DEVICES applies; one per process
    under a launcher: its local rank), else the CPU; and its name."""
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank())
        torch.cuda.set_device(device)
        return device, torch.cuda.get_device_name(device)
    return torch.device("cpu"), f"CPU ({torch.get_num_threads()} threads)"


def autocast(device: torch.device):
    """bf16 autocast on CUDA (tensor cores), full precision on CPU."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
