"""Training speed, side by side: the crop loader, stock vs fast relative position bias, the tiny
model's training throughput on CPU (on a GPU, the full-size figures: perf/gpu_check.py).

    .venv/bin/python perf/bench_training.py [--quick] [--threads N] [--results FILE]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode
from transformers import Wav2Vec2BertConfig, Wav2Vec2BertForSequenceClassification

from fma_genre.features.crops import frames_of, random_crops
from fma_genre.features.loader import WindowLoader
from fma_genre.models.classifier import use_fast_relative_key_attention
from fma_genre.models.pretrained import TINY_MODEL_CONFIG

from record import add_results_argument, write_results

CLIP_FRAMES = 2998  # a 30 s FMA clip
N_LABELS = 16
# Dense bf16 tensor-core peaks (no sparsity) by device-name fragment, most specific first.
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,  # SXM
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 70e12,
}


def write_feature_files(folder: Path, n_files: int) -> list[str]:
    """Random log-mel feature files of 30 s clips, as the feature stage writes them."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n_files):
        path = folder / f"{i:06d}.npy"
        np.save(path, rng.normal(size=(CLIP_FRAMES, 80)).astype(np.float16))
        paths.append(str(path))
    return paths


def loader_crops_per_second(
    paths: list[str], passes: int, crop_seconds: float, batch_size: int, workers: tuple[int, ...]
) -> dict[int, float]:
    """Training crops per second of the training's own loader (random crop, normalise, stack,
    pad) over on-disk float16 feature files, with each number of worker processes in turn (0: in
    the training process); the workers' start-up counts, once per loader as in a run."""
    n_frames = np.full(len(paths), CLIP_FRAMES)
    crop_frames = frames_of(crop_seconds)
    measured = {}
    for count in workers:
        loader = WindowLoader(paths, torch.device("cpu"), workers=count)
        started, n_crops = time.perf_counter(), 0
        for epoch in range(passes):
            crops = random_crops(n_frames, crop_frames, np.random.default_rng(epoch))
            for features, _, _ in loader.batches(crops, batch_size):
                n_crops += len(features)
        measured[count] = n_crops / (time.perf_counter() - started)
        del loader
    return measured


def classifier(config: Wav2Vec2BertConfig, attn_implementation: str) -> Wav2Vec2BertForSequenceClassification:
    return Wav2Vec2BertForSequenceClassification._from_config(config, attn_implementation=attn_implementation)


def forward_backward(model, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    logits = model(input_features=features, attention_mask=mask).logits
    logits.square().mean().backward()
    return logits.detach()


def cpu_peak_bytes(function) -> int:
    """Peak of the bytes held by PyTorch's CPU allocator while `function` runs (profiler events)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        function()
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
        key=lambda e: e.start_ns(),
    )
    held = peak = 0
    for event in events:
        held += event.nbytes()
        peak = max(peak, held)
    return peak


def stock_vs_fast(length: int, batch_size: int, repeats: int) -> dict:
    """Forward+backward time and peak memory of the stock and the fast relative_key bias (CPU)."""
    # Head size 64 as in w2v-bert-2.0; width and depth small enough for a CPU.
    config = Wav2Vec2BertConfig(
        **(TINY_MODEL_CONFIG | dict(hidden_size=256, num_attention_heads=4, intermediate_size=512)),
        num_labels=N_LABELS,
        use_weighted_layer_sum=True,
        layerdrop=0.0,
        mask_time_prob=0.0,
    )
    torch.manual_seed(0)
    stock = classifier(config, "eager").eval()  # eval: no dropout, so both give the same logits
    fast = classifier(config, "eager").eval()
    fast.load_state_dict(stock.state_dict())
    use_fast_relative_key_attention(fast)
    features = torch.randn(batch_size, length, 160)
    mask = torch.ones(batch_size, length, dtype=torch.long)
    mask[-1, length // 2 :] = 0

    result = {}
    for name, model in (("stock", stock), ("fast", fast)):
        logits = forward_backward(model, features, mask)  # warm-up
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            forward_backward(model, features, mask)
            seconds.append(time.perf_counter() - started)
        result[name] = dict(
            seconds=statistics.median(seconds),
            peak_bytes=cpu_peak_bytes(functools.partial(forward_backward, model, features, mask)),
            logits=logits,
        )
    result["max_logit_difference"] = (result["stock"]["logits"] - result["fast"]["logits"]).abs().max().item()
    return result


def training_step(model, batch_size: int, length: int, device: torch.device):
    """One full optimiser step on random crops (bf16 autocast on CUDA), as a function."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    features = torch.randn(batch_size, length, 160, device=device)
    mask = torch.ones(batch_size, length, dtype=torch.long, device=device)
    targets = (torch.rand(batch_size, N_LABELS, device=device) < 0.1).float()

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(input_features=features, attention_mask=mask).logits
        loss = loss_fn(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def training_flops_per_clip(model, length: int, device: torch.device) -> float:
    """The model's FLOPs in a training step, per clip: counted at batch 1 (they grow linearly
    with the batch). Count them before enabling gradient checkpointing: MFU leaves its
    recomputation out."""
    model.to(device).train()
    counter = FlopCounterMode(display=False)
    with counter:
        training_step(model, 1, length, device)()
    return counter.get_total_flops()


def training_throughput(
    model, batch_size: int, length: int, steps: int, device: torch.device, compile_backend: str | None = None
) -> dict:
    """Clips per second of `steps` full optimiser steps after two of warm-up (torch.compile's
    compilation, with `compile_backend`, happens there), and the peak GPU memory."""
    model.to(device).train()
    use_fast_relative_key_attention(model)
    step = training_step(
        torch.compile(model, backend=compile_backend) if compile_backend else model,
        batch_size,
        length,
        device,
    )
    synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    started = time.perf_counter()
    step(), step()
    synchronize()
    warm_up_seconds = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    return dict(
        clips_per_second=batch_size * steps / (time.perf_counter() - started),
        warm_up_seconds=warm_up_seconds,
        peak_gpu_bytes=torch.cuda.max_memory_allocated() if device.type == "cuda" else None,
    )


def peak_bf16_flops(device_name: str) -> float | None:
    return next((flops for fragment, flops in PEAK_BF16_FLOPS.items() if fragment in device_name), None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, a few seconds on CPU (the test suite)"
    )
    parser.add_argument("--threads", type=int, default=2)
    add_results_argument(parser, "bench_training")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} CPU threads")

    n_files, passes = (64, 2) if args.quick else (512, 3)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_feature_files(Path(tmp), n_files)
        by_workers = loader_crops_per_second(
            paths, passes, crop_seconds=10.0, batch_size=16, workers=(0, 1, 2)
        )
    measured = dict(
        quick=args.quick,
        threads=args.threads,
        loader_crops_per_second=by_workers[0],
        loader_crops_per_second_by_workers={str(count): rate for count, rate in by_workers.items()},
    )
    print(
        f"(1) loader: training crops/s from 10 s crops of {n_files} page-cached {CLIP_FRAMES}x80 "
        f"float16 files, batch 16 (an H100 trains ~200-250 crops/s): "
        + ", ".join(f"{rate:.0f} with {count} workers" for count, rate in by_workers.items())
        + f"; 2 workers / in-process {by_workers[2] / by_workers[0]:.2f}x"
    )

    length, batch, repeats = (300, 1, 1) if args.quick else (500, 4, 5)
    bias = stock_vs_fast(length, batch, repeats)
    stock, fast = bias["stock"], bias["fast"]
    print(
        f"(2) relative_key position bias, forward+backward, L={length}, batch {batch}, hidden 256, 4 heads of 64, CPU:"
    )
    print(
        f"    stock {stock['seconds'] * 1e3:.0f} ms, {stock['peak_bytes'] / 2**20:.0f} MiB peak | "
        f"fast {fast['seconds'] * 1e3:.0f} ms, {fast['peak_bytes'] / 2**20:.0f} MiB peak"
    )
    measured["relative_key_bias"] = dict(
        length=length,
        batch=batch,
        stock_seconds=stock["seconds"],
        fast_seconds=fast["seconds"],
        speed_up=stock["seconds"] / fast["seconds"],
        memory_ratio_fast_over_stock=fast["peak_bytes"] / stock["peak_bytes"],
        max_logit_difference=bias["max_logit_difference"],
    )
    print(
        f"    speed-up {stock['seconds'] / fast['seconds']:.2f}x, memory ratio fast/stock "
        f"{fast['peak_bytes'] / stock['peak_bytes']:.2f}, max logit difference {bias['max_logit_difference']:.2e}"
    )

    batch, steps = (4, 1) if args.quick else (16, 10)
    for crop_seconds in (5.0, 10.0):
        config = Wav2Vec2BertConfig(
            **TINY_MODEL_CONFIG, num_labels=N_LABELS, use_weighted_layer_sum=True, layerdrop=0.0
        )
        torch.manual_seed(0)
        tiny = training_throughput(
            classifier(config, "eager"),
            batch_size=batch,
            length=frames_of(crop_seconds) // 2,
            steps=steps,
            device=torch.device("cpu"),
        )
        measured[f"tiny_cpu_clips_per_second_{crop_seconds:.0f}s_crops"] = tiny["clips_per_second"]
        print(
            f"(3) tiny model training on CPU, {crop_seconds:.0f} s crops, batch {batch}: "
            f"{tiny['clips_per_second']:.1f} clips/s"
        )

    print("(4) on a GPU: perf/gpu_check.py (full-size throughput, MFU, scoring, the demo on GPU and CPU)")
    write_results(args.results, "bench_training", measured)


if __name__ == "__main__":
    main()
