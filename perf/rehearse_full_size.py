"""Full-size rehearsal: the w2v-bert-2.0 architecture (`Wav2Vec2BertConfig()` defaults, random
weights, no download) through the project's own feature, training, checkpoint, resume and
scoring code on a few synthetic demo tracks. It prints one JSON line.

    .venv/bin/python perf/rehearse_full_size.py [--threads 2] [--workdir DIR] [--results FILE]
    .venv/bin/python perf/rehearse_full_size.py --tiny      # the same path in seconds
    .venv/bin/python perf/rehearse_full_size.py --processes 2  # and 1 vs 2 processes

The run: a training of one epoch (3 steps of `--batch-size` x 10 s crops) that SIGTERM stops
after its first step, as SLURM would; the resume that finishes it (validation, best weights,
the saved model); then scoring the validation and test tracks with the saved model. Measured: parameters, peak RSS (and peak GPU
memory on CUDA), the resume state's bytes against model + AdamW state, seconds to write and to
load it, seconds per training step and its crop shape, scoring windows per second, and on CUDA
the clips/s and MFU of bf16 training at batch 16 x 10 s (perf/bench_training.py).
It needs about 15 GB of RAM and of disk on CPU (the state alone is about 7 GB).

`--processes N` adds short trainings (2 steps of 2 crops per process, `runtime.processes.launch`)
with 1 and N processes, each with and without gradient checkpointing: the clips/s, the scaling
efficiency (clips/s with N over N x clips/s with 1) and every process's peak memory (RSS; on
CUDA, GPU memory). N full-size processes on CPU need N x ~14 GB of RAM.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import signal
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
import yaml
from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

from fma_genre.demo.catalogue import build_catalogue
from fma_genre.demo.instruments import SAMPLE_RATE
from fma_genre.demo.synthesis import synthesize_clip
from fma_genre.features.crops import frames_of
from fma_genre.features.shard import extract_track
from fma_genre.features.splits import read_split
from fma_genre.models.classifier import load_classifier
from fma_genre.models.pretrained import TINY_MODEL_CONFIG, feature_extractor, write_source
from fma_genre.runtime.devices import best_device
from fma_genre.runtime.processes import launch
from fma_genre.scoring.windows import window_frames_of, window_logits
from fma_genre.training import loop as train_module
from fma_genre.training import resume
from fma_genre.training.settings import TrainingSettings

from bench_training import peak_bf16_flops, training_throughput
from record import add_results_argument, write_results

TRAINING_SCHEMA = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml").read_text()
)["properties"]["training"]

GENRES = ["Hip-Hop", "Rock", "Electronic", "Folk"]  # top genres of fma_small, their genres.csv ids:
GENRE_IDS = {"Hip-Hop": 21, "Rock": 12, "Electronic": 15, "Folk": 17}
CROP_SECONDS = 10.0
CLIP_SECONDS = 30.0


def write_tracks(root: Path, n_training: int) -> tuple[Path, Path]:
    """Demo clips (30 s WAV) through the feature stage's own code; the manifest and vocabulary."""
    catalogue = build_catalogue(tracks_per_genre=4, seed=0, clip_seconds=CLIP_SECONDS)
    jobs = [job for job in catalogue.clip_jobs if job.kind == "audio" and job.artist.genre in GENRES]
    splits = ["training"] * n_training + ["validation", "test"]
    rows = []
    for job, split in zip(jobs, splits):
        wav, npy = root / "audio" / f"{job.track_id}.wav", root / "features" / f"{job.track_id:06d}.npy"
        wav.parent.mkdir(exist_ok=True)
        npy.parent.mkdir(exist_ok=True)
        samples = synthesize_clip(job.artist, np.random.default_rng(job.track_id), CLIP_SECONDS)
        sf.write(wav, samples, SAMPLE_RATE)
        n_frames, sha1, _ = extract_track(wav, npy, min_clip_seconds=5.0)
        labels = [int(job.artist.genre == genre) for genre in GENRES]
        rows.append([job.track_id, split, job.artist.genre, str(npy), n_frames, sha1, "ok", *labels])
    columns = ["track_id", "split", "genre_top", "path", "n_frames", "sha1", "status"]
    pd.DataFrame(rows, columns=columns + [f"label_{GENRE_IDS[g]}" for g in GENRES]).to_csv(
        root / "manifest.csv", index=False
    )
    pd.DataFrame(
        [(GENRE_IDS[g], g, 1, 1) for g in GENRES],
        columns=["genre_id", "title", "top_level", "n_training_tracks"],
    ).to_csv(root / "vocabulary.tsv", sep="\t", index=False)
    return root / "manifest.csv", root / "vocabulary.tsv"


def write_random_model(out_dir: Path, tiny: bool) -> int:
    """w2v-bert-2.0's architecture (or the tiny one) with random weights, saved like a hub model."""
    torch.manual_seed(0)
    model = Wav2Vec2BertModel(Wav2Vec2BertConfig(**(TINY_MODEL_CONFIG if tiny else {})))
    model.save_pretrained(out_dir)
    feature_extractor().save_pretrained(out_dir)
    write_source(out_dir, "random Wav2Vec2BertConfig()" + (" (tiny)" if tiny else ""), None, "random")
    return sum(p.numel() for p in model.parameters())


class Timed:
    """Wrap a module's function (or a class's method) to record (seconds, result) of each call."""

    def __init__(self, module, name: str):
        self.function, self.calls = getattr(module, name), []
        setattr(module, name, self)

    def __get__(self, instance, owner):  # wrapping a method: bind it to its instance
        return self if instance is None else lambda *args, **kwargs: self(instance, *args, **kwargs)

    def __call__(self, *args, **kwargs):
        started = time.perf_counter()
        result = self.function(*args, **kwargs)
        self.calls.append((time.perf_counter() - started, result))
        return result


def sigterm_after_first_training_step() -> None:
    """As SLURM does before a time limit: SIGTERM, here during the first training forward pass."""
    real_load_classifier = train_module.load_classifier
    sent = []

    def load_classifier(*args, **kwargs):
        model = real_load_classifier(*args, **kwargs)

        def hook(module, inputs, output):
            if module.training and not sent:
                sent.append(True)
                os.kill(os.getpid(), signal.SIGTERM)

        model.register_forward_hook(hook)
        return model

    train_module.load_classifier = load_classifier


def rehearse(workdir: Path, *, tiny: bool, threads: int, batch_size: int) -> dict:
    torch.set_num_threads(threads)
    device, device_name = best_device()
    manifest, vocabulary = write_tracks(workdir, n_training=3 * batch_size)
    parameters = write_random_model(workdir / "pretrained", tiny)
    settings = TrainingSettings.from_schema_defaults(
        TRAINING_SCHEMA,
        epochs=1,
        batch_size=batch_size,
        crop_seconds=CROP_SECONDS,
        eval_batch_size=4,
        lr_backbone=1e-5,
        lr_head=1e-3,
        checkpoint_minutes=60.0,
    )
    outputs = [
        manifest,
        vocabulary,
        workdir / "pretrained",
        workdir / "model",
        workdir / "log.csv",
        workdir / "state",
        workdir / "tensorboard",
    ]
    saves, loads = Timed(resume, "save_state"), Timed(train_module.TrainingRun, "resume")
    sigterm_after_first_training_step()
    try:
        train_module.train(*outputs, settings, threads=threads)
        raise RuntimeError("the SIGTERM did not stop the first attempt")
    except train_module.TrainingInterrupted:
        pass
    gc.collect()  # the first attempt's model and optimiser go before the resume loads its own
    state = torch.load(workdir / "state" / resume.STATE_FILE, weights_only=True, mmap=True)
    model_bytes = sum(t.numel() * t.element_size() for t in state["model"].values())
    adam_bytes = sum(
        t.numel() * t.element_size() for s in state["optimizer"]["state"].values() for t in s.values()
    )
    del state
    state_bytes, write_seconds = saves.calls[0][1]
    summary = train_module.train(*outputs, settings, threads=threads)  # the resume
    load_seconds = loads.calls[-1][0]  # reading the state into the model and the optimiser

    model = load_classifier(workdir / "model", device=device)
    scored = [read_split(manifest, split) for split in ("validation", "test")]
    started = time.perf_counter()
    logits, _ = window_logits(
        model,
        [p for s in scored for p in s.paths],
        np.concatenate([s.n_frames for s in scored]),
        window_frames_of(model),
        4,
        device,
        desc="scoring",
    )
    scoring_seconds = time.perf_counter() - started
    result = dict(
        device=device_name,
        architecture="tiny" if tiny else "Wav2Vec2BertConfig() defaults (w2v-bert-2.0)",
        parameters=parameters,
        training_step_crop_shape=[batch_size, frames_of(CROP_SECONDS) // 2, 160],
        seconds_per_training_step=batch_size / summary["train_clips_per_second"],
        resume_state_bytes=state_bytes,
        model_plus_adamw_bytes=model_bytes + adam_bytes,
        resume_state_ratio=state_bytes / (model_bytes + adam_bytes),
        resume_state_write_seconds=write_seconds,
        resume_state_load_seconds=load_seconds,
        best_weights_bytes=(workdir / "model" / "model.safetensors").stat().st_size,
        scoring_windows_per_second=len(logits) / scoring_seconds,
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    )
    if device.type == "cuda":
        result["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
        result.update(gpu_throughput(device_name, tiny))
    return result


def gpu_throughput(device_name: str, tiny: bool) -> dict:
    """bf16 training clips/s and MFU at batch 16 x 10 s crops (bench_training's measurement)."""
    from transformers import Wav2Vec2BertForSequenceClassification

    config = Wav2Vec2BertConfig(
        **(TINY_MODEL_CONFIG if tiny else {}), num_labels=16, use_weighted_layer_sum=True, layerdrop=0.0
    )
    torch.manual_seed(0)
    model = Wav2Vec2BertForSequenceClassification._from_config(config, attn_implementation="sdpa")
    measured = training_throughput(
        model,
        batch_size=16,
        length=frames_of(CROP_SECONDS) // 2,
        steps=10,
        device=torch.device("cuda"),
    )
    peak = peak_bf16_flops(device_name)
    return dict(
        gpu_batch16_clips_per_second=measured["clips_per_second"],
        gpu_batch16_peak_bytes=measured["peak_gpu_bytes"],
        gpu_bf16_mfu=measured["flops_per_second"] / peak if peak else None,
    )


SCALING_MICRO_BATCH, SCALING_STEPS = 2, 2


def measured_training(peak_file: str, **train_kwargs) -> None:
    """One training process of `scaling`: train, then record this process's peak memory."""
    train_module.train(**train_kwargs)
    peaks = dict(peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    if torch.cuda.is_available():
        peaks["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    Path(peak_file.format(rank=os.environ.get("RANK", "0"))).write_text(json.dumps(peaks))


def scaling(workdir: Path, max_processes: int, *, tiny: bool, threads: int) -> list[dict]:
    """Clips/s and per-process peak memory of 1 and `max_processes` training processes, each with
    and without gradient checkpointing; the micro-batch per process stays the same."""
    data = workdir / "scaling"
    data.mkdir()
    manifest, vocabulary = write_tracks(data, n_training=SCALING_STEPS * SCALING_MICRO_BATCH * max_processes)
    write_random_model(data / "pretrained", tiny)
    # The launched processes import this file's measured_training.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
    )
    results = []
    for processes in sorted({1, max_processes}):
        for gradient_checkpointing in (False, True):
            out = data / f"{processes}-{gradient_checkpointing}"
            out.mkdir()
            settings = TrainingSettings.from_schema_defaults(
                TRAINING_SCHEMA,
                epochs=1,
                batch_size=SCALING_MICRO_BATCH * processes,
                micro_batch_size=SCALING_MICRO_BATCH,
                crop_seconds=CROP_SECONDS,
                eval_batch_size=4,
                gradient_checkpointing=gradient_checkpointing,
            )
            kwargs = dict(
                manifest_csv=str(manifest),
                vocabulary_tsv=str(vocabulary),
                pretrained_dir=str(data / "pretrained"),
                model_out_dir=str(out / "model"),
                training_log_csv=str(out / "log.csv"),
                state_dir=str(out / "state"),
                tensorboard_dir=str(out / "tensorboard"),
                settings=settings,
                threads=max(1, threads // processes),
                peak_file=str(out / "peak-{rank}.json"),
            )
            # Launched even alone: its own process, whose peak memory is the training's only.
            launch("rehearse_full_size:measured_training", kwargs, processes, out / "train.log")
            summary = json.loads((out / "model" / "training_summary.json").read_text())
            peaks = [json.loads((out / f"peak-{rank}.json").read_text()) for rank in range(processes)]
            results.append(
                dict(
                    processes=processes,
                    gradient_checkpointing=gradient_checkpointing,
                    clips_per_second=summary["train_clips_per_second"],
                    **{f"per_process_{name}": [peak[name] for peak in peaks] for name in peaks[0]},
                )
            )
    for result in results:
        single = next(
            r
            for r in results
            if r["processes"] == 1 and r["gradient_checkpointing"] == result["gradient_checkpointing"]
        )
        result["scaling_efficiency"] = result["clips_per_second"] / (
            result["processes"] * single["clips_per_second"]
        )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny architecture: the same path in seconds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2, help="training crops per step")
    parser.add_argument(
        "--workdir", type=Path, help="where the ~15 GB of files go (default: a temporary folder)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="also train with 1 and this many processes, with and without gradient checkpointing",
    )
    add_results_argument(parser, "rehearse_full_size")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        result = rehearse(Path(workdir), tiny=args.tiny, threads=args.threads, batch_size=args.batch_size)
        if args.processes:
            result["scaling"] = scaling(Path(workdir), args.processes, tiny=args.tiny, threads=args.threads)
    print(json.dumps(result))
    write_results(args.results, "rehearse_full_size", result)


if __name__ == "__main__":
    main()
