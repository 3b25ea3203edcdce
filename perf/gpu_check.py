"""The GPU check, one command: on a CUDA machine, the w2v-bert-2.0 architecture's (random
weights) bf16 training throughput at the largest batch of 10 s crops that fits, with and without
gradient checkpointing and torch.compile (clips/s, MFU against the card's dense bf16 peak, peak
memory), its scoring windows/s, the crop loader's crops/s, and the demo's first 2 epochs trained
on the GPU and on the CPU, their metrics side by side. At most 8 minutes on one H100
(`--budget-minutes` skips what would not fit, and says so).

    .venv/bin/python perf/gpu_check.py [--out FILE] [--budget-minutes 7]

Without CUDA it runs the same code on the tiny architecture on the CPU, with a smaller demo
(under 2 minutes; MFU null): the test suite runs it so that this script cannot rot.
Written to perf/results/gpu_check-<device>.json unless `--out` names the file.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from transformers import Wav2Vec2BertConfig

from fma_genre.features.crops import frames_of
from fma_genre.models.pretrained import TINY_MODEL_CONFIG
from fma_genre.runtime.devices import best_device
from fma_genre.scoring.windows import window_logits

from bench_training import (
    CLIP_FRAMES,
    N_LABELS,
    classifier,
    loader_crops_per_second,
    peak_bf16_flops,
    training_flops_per_clip,
    training_throughput,
    write_feature_files,
)
from record import RESULTS_DIR, peak_rss_bytes, write_results

PROJECT = Path(__file__).resolve().parents[1]
CROP_SECONDS = 10.0
# Batches tried, largest first, without and with gradient checkpointing (it fits more).
BATCH_SIZES = {False: (64, 48, 32, 16, 8, 4, 2, 1), True: (256, 192, 128, 96, 64, 32, 16, 8, 4, 2, 1)}
TIMED_STEPS = 10
DEMO_EPOCHS = 2
DEMO_TRAINING_LOG = "results/experiments/finetune/seed0/training_log.csv"
DEMO_SUMMARY = "results/experiments/finetune/seed0/model/training_summary.json"


class Budget:
    """The check's time: each part runs only if the time it needs is left."""

    def __init__(self, minutes: float):
        self.deadline = time.monotonic() + 60 * minutes

    def allows(self, seconds: float) -> bool:
        return time.monotonic() + seconds <= self.deadline


def largest_batch_throughput(
    model, gradient_checkpointing: bool, device, batches: tuple[int, ...], compile_backend
) -> dict:
    """Training clips/s at the largest of `batches` that fits."""
    if gradient_checkpointing:  # as the training enables it
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=dict(use_reentrant=False))
    else:
        model.activation_checkpointing_disable()
    for batch in batches:
        model.zero_grad(set_to_none=True)
        gc.collect()
        try:
            measured = training_throughput(
                model,
                batch_size=batch,
                length=frames_of(CROP_SECONDS) // 2,
                steps=TIMED_STEPS if device.type == "cuda" else 2,
                device=device,
                compile_backend=compile_backend,
            )
            return dict(batch=batch, **measured)
        except torch.cuda.OutOfMemoryError:
            print(f"    batch {batch} does not fit", flush=True)
        finally:
            torch._dynamo.reset()  # a compiled graph per variant
            if device.type == "cuda":
                torch.cuda.empty_cache()
    raise RuntimeError("not even a batch of 1 fits")


def training_variants(
    model, device, device_name: str, flops_per_clip: float, budget: Budget, eager: list[dict] | None = None
) -> list[dict]:
    """Training without and with gradient checkpointing: eager, or (given the `eager` variants)
    compiled at their batch, as each compilation takes minutes (inductor on CUDA; on a CPU
    aot_eager, as inductor's C++ build takes minutes there)."""
    cuda = device.type == "cuda"
    peak = peak_bf16_flops(device_name) if cuda else None
    backend = ("inductor" if cuda else "aot_eager") if eager else None
    needs_seconds = (150 if eager else 30) if cuda else 0  # compiling the full size: minutes
    variants = []
    for gradient_checkpointing in (False, True):
        variant = dict(gradient_checkpointing=gradient_checkpointing, compile=backend or False)
        if not budget.allows(needs_seconds):
            variants.append(variant | dict(skipped="not enough of the time budget left"))
            continue
        batches = BATCH_SIZES[gradient_checkpointing] if cuda else (2,)
        if eager:
            fitted = [
                v["batch"]
                for v in eager
                if v["gradient_checkpointing"] == gradient_checkpointing and "batch" in v
            ]
            batches = tuple(fitted) or batches
        try:
            measured = largest_batch_throughput(model, gradient_checkpointing, device, batches, backend)
        except Exception as error:  # noqa: BLE001 - one failed variant must not lose the others
            variants.append(variant | dict(failed=repr(error)))
            continue
        flops_per_second = flops_per_clip * measured["clips_per_second"]
        variants.append(
            variant
            | measured
            | dict(
                model_flops_per_clip=flops_per_clip,
                flops_per_second=flops_per_second,
                mfu=flops_per_second / peak if peak else None,
            )
        )
        print(f"    {variants[-1]}", flush=True)
    model.activation_checkpointing_disable()
    return variants


def scoring_windows_per_second(model, paths: list[str], device, batch_size: int) -> float:
    """Windows/s of the scoring code (bf16 on CUDA) over whole 30 s clips in 10 s windows."""
    model.to(device)
    n_frames = np.full(len(paths), CLIP_FRAMES)
    window_frames = frames_of(CROP_SECONDS)
    window_logits(model, paths[:2], n_frames[:2], window_frames, batch_size, device, desc="warm-up")
    started = time.perf_counter()
    logits, _ = window_logits(model, paths, n_frames, window_frames, batch_size, device, desc="scoring")
    return len(logits) / (time.perf_counter() - started)


def demo_config(workdir: Path, tracks_per_genre: int | None) -> Path:
    """The demo's config with one fine-tune seed of DEMO_EPOCHS epochs."""
    config = yaml.safe_load((PROJECT / "config" / "demo.yaml").read_text())
    config["training"] |= dict(epochs=DEMO_EPOCHS)
    config["experiments"], config["seeds"] = {"finetune": {}}, [0]
    if tracks_per_genre:
        config["demo"]["tracks_per_genre"] = tracks_per_genre
    path = workdir / "gpu_check.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def demo_training(workdir: Path, config: Path, env: dict, *extra: str) -> dict:
    """The demo's fine-tune (and what it needs) by Snakemake; its epochs' metrics."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        DEMO_TRAINING_LOG,
        "--snakefile",
        str(PROJECT / "Snakefile"),
    ]
    command += ["--directory", str(workdir), "--configfile", str(config), "--cores", str(os.cpu_count())]
    command += ["--workflow-profile", str(PROJECT / "workflow/profiles/demo"), *extra]  # extra: nargs="*"
    with open(workdir / "snakemake.log", "w") as log:
        done = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        raise RuntimeError(f"snakemake failed: {(workdir / 'snakemake.log').read_text()[-3000:]}")
    summary = json.loads((workdir / DEMO_SUMMARY).read_text())
    epochs = pd.read_csv(workdir / DEMO_TRAINING_LOG)
    return dict(
        device=summary.get("device"),
        train_clips_per_second=summary["train_clips_per_second"],
        epochs=epochs.to_dict(orient="records"),
    )


def demo_on_gpu_and_cpu(workdir: Path, cuda: bool, tracks_per_genre: int | None) -> dict:
    """The same 2 epochs (same data, seed and config) on the GPU, then on the CPU only."""
    gpu_dir, cpu_dir = workdir / "demo-gpu", workdir / "demo-cpu"
    (gpu_dir if cuda else cpu_dir).mkdir()
    config = demo_config(workdir, tracks_per_genre)
    result = dict(gpu=demo_training(gpu_dir, config, dict(os.environ)) if cuda else None)
    if cuda:
        shutil.copytree(gpu_dir, cpu_dir, symlinks=True)
    cpu_only = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    result["cpu"] = demo_training(cpu_dir, config, cpu_only, *(["--forcerun", "train"] if cuda else []))
    return result


def headline(variants: list[dict]) -> dict:
    """The fastest measured training variant's figures."""
    measured = [v for v in variants if "clips_per_second" in v]
    best = max(measured, key=lambda v: v["clips_per_second"])
    return dict(
        training_clips_per_second=best["clips_per_second"],
        mfu=best["mfu"],
        peak_memory_bytes=best["peak_gpu_bytes"],
        fastest_training=dict(gradient_checkpointing=best["gradient_checkpointing"], compile=best["compile"]),
    )


def device_slug(device_name: str) -> str:
    return (
        "cpu" if device_name.startswith("CPU") else re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, help="the JSON file (default perf/results/gpu_check-<device>.json)"
    )
    parser.add_argument("--budget-minutes", type=float, default=7.0)
    args = parser.parse_args(argv)
    started, budget = time.monotonic(), Budget(args.budget_minutes)
    device, device_name = best_device()
    cuda = device.type == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = True
    print(f"gpu check on {device_name} ({'full size' if cuda else 'tiny model, CPU: no CUDA'})", flush=True)
    config = Wav2Vec2BertConfig(
        **({} if cuda else TINY_MODEL_CONFIG), num_labels=N_LABELS, use_weighted_layer_sum=True, layerdrop=0.0
    )
    torch.manual_seed(0)
    model = classifier(config, "sdpa")
    result = dict(
        device=device_name,
        architecture="Wav2Vec2BertConfig() defaults (w2v-bert-2.0)" if cuda else "tiny (no CUDA)",
        crop_seconds=CROP_SECONDS,
    )
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_feature_files(Path(tmp), 256 if cuda else 16)
        workers = (0, 2, 4, 8) if cuda else (0, 1)
        print("(1) loader", flush=True)
        rates = loader_crops_per_second(paths, 2, CROP_SECONDS, batch_size=32, workers=workers)
        result["loader_crops_per_second"] = {str(count): rate for count, rate in rates.items()}
        print("(2) training, eager", flush=True)
        # The model's FLOPs (batch 1, eager, no recomputation): the MFU of every variant.
        flops_per_clip = training_flops_per_clip(model, frames_of(CROP_SECONDS) // 2, device)
        result["training"] = training_variants(model, device, device_name, flops_per_clip, budget)
        print("(3) scoring", flush=True)
        result["scoring_windows_per_second"] = scoring_windows_per_second(
            model.eval(), paths if cuda else paths[:4], device, 64 if cuda else 4
        )
        print("(4) the demo's first epochs", flush=True)
        result["demo_two_epochs"] = dict(skipped="not enough of the time budget left")
        if budget.allows(60 if cuda else 0):
            try:
                result["demo_two_epochs"] = demo_on_gpu_and_cpu(Path(tmp), cuda, None if cuda else 8)
            except Exception as error:  # noqa: BLE001 - the figures above are written all the same
                result["demo_two_epochs"] = dict(failed=repr(error))
        print("(5) training, compiled", flush=True)  # last: the time budget drops it first
        result["training"] += training_variants(
            model, device, device_name, flops_per_clip, budget, result["training"]
        )
    result |= headline(result["training"])
    if not cuda:
        result["peak_memory_bytes"] = peak_rss_bytes()
    result["seconds"] = time.monotonic() - started
    out = args.out or RESULTS_DIR / f"gpu_check-{device_slug(device_name)}.json"
    write_results(out, "gpu_check", result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("training", "demo_two_epochs")}))


if __name__ == "__main__":
    main()
