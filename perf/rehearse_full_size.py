"""Full-size rehearsal: the w2v-bert-2.0 architecture (`Wav2Vec2BertConfig()` defaults, random
weights, no download) through the project's own feature, training, checkpoint, resume and
scoring code on a few synthetic demo tracks. It prints one JSON line. (On a GPU, the training
throughput, MFU and scoring speed at full size: perf/gpu_check.py.)

    .venv/bin/python perf/rehearse_full_size.py [--threads 2] [--workdir DIR] [--results FILE]
    .venv/bin/python perf/rehearse_full_size.py --tiny      # the same path in seconds
    .venv/bin/python perf/rehearse_full_size.py --processes 2  # and 1 vs 2 processes

The run: a training of one epoch (3 steps of `--batch-size` x 10 s crops) that SIGTERM stops
after its first step, as SLURM would; the resume that finishes it (validation, best weights,
the saved model); then scoring the validation and test tracks with the saved model. Measured: parameters, peak RSS (and peak GPU
memory on CUDA), the resume state's bytes against model + AdamW state, seconds to write and to
load it, seconds per training step and its crop shape, scoring windows per second.
It needs about 15 GB of RAM and of disk on CPU (the state alone is about 7 GB).

After the SIGTERM, before the resume: 2 launched processes each build the run from the saved
state (model, AdamW, progress: read memory-mapped), and report their peak RSS.

`--probe-tracks N [N ...]` adds, for each N, a probe cache of the architecture's shape (random
values, 3 windows of 10 s per 30 s track, N training and N/8 validation tracks) and a probe
training of 2 epochs from it as rule train runs it, in a process of its own: the cache's bytes
and the process's peak RSS, and how the RSS grows against the cache from the first N to the last.

`--processes N` adds short trainings (2 steps of 2 crops per process, `runtime.processes.launch`)
with 1 and N processes, each with and without gradient checkpointing: the clips/s, the scaling
efficiency (clips/s with N over N x clips/s with 1) and every process's peak memory (RSS; on
CUDA, GPU memory). N full-size processes on CPU need N x ~14 GB of RAM.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import json
import multiprocessing
import os
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
from fma_genre.features.crops import evaluation_windows, frames_of
from fma_genre.features.shard import extract_track
from fma_genre.features.splits import read_split
from fma_genre.models.classifier import load_classifier
from fma_genre.models.pretrained import TINY_MODEL_CONFIG, feature_extractor, write_source
from fma_genre.runtime.devices import best_device
from fma_genre.runtime.processes import join, launch, leave
from fma_genre.scoring.windows import window_frames_of, window_logits
from fma_genre.training import loop as train_module
from fma_genre.training import probe_cache, resume
from fma_genre.training.settings import TrainingSettings

from record import add_results_argument, peak_rss_bytes, write_results

TRAINING_SCHEMA = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml").read_text()
)["properties"]["training"]

GENRES = ["Hip-Hop", "Rock", "Electronic", "Folk"]  # top genres of fma_small, their genres.csv ids:
GENRE_IDS = {"Hip-Hop": 21, "Rock": 12, "Electronic": 15, "Folk": 17}
CROP_SECONDS = 10.0
CLIP_SECONDS = 30.0


def write_manifest(root: Path, rows: list[list]) -> tuple[Path, Path]:
    """The manifest of `rows` (track_id, split, genre_top, path, n_frames, sha1, status, one
    label per genre of GENRES) and the vocabulary of GENRES."""
    columns = ["track_id", "split", "genre_top", "path", "n_frames", "sha1", "status"]
    pd.DataFrame(rows, columns=columns + [f"label_{GENRE_IDS[g]}" for g in GENRES]).to_csv(
        root / "manifest.csv", index=False
    )
    pd.DataFrame(
        [(GENRE_IDS[g], g, 1, 1) for g in GENRES],
        columns=["genre_id", "title", "top_level", "n_training_tracks"],
    ).to_csv(root / "vocabulary.tsv", sep="\t", index=False)
    return root / "manifest.csv", root / "vocabulary.tsv"


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
    return write_manifest(root, rows)


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
    best_saves = Timed(resume, "save_best")
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
    resumed_in_two = resume_in_processes(workdir, outputs, settings, threads, processes=2)
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
        peak_rss_bytes=peak_rss_bytes(),
        resume_in_2_processes_peak_rss_bytes=resumed_in_two,
        checkpoint_seconds_per_hour=checkpoint_seconds_per_hour(
            write_seconds,
            best_saves.calls[-1][0],
            TRAINING_SCHEMA["properties"]["checkpoint_minutes"]["default"],
        ),
    )
    if device.type == "cuda":
        result["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    return result


# fma_small's training split, and an H100's training rate on it (the ~200 clips/s that
# perf/gpu_check.py is there to measure): the epoch length checkpoints were once written after.
FMA_SMALL_TRAINING_TRACKS, H100_CLIPS_PER_SECOND = 6400, 200.0


def checkpoint_seconds_per_hour(state_seconds: float, best_seconds: float, checkpoint_minutes: float) -> dict:
    """Seconds of each hour of training spent writing the state and the best weights (computed
    from the times measured here, at the worst: the best weights improve every time): after
    every fma_small epoch on an H100, against every `checkpoint_minutes`."""
    epoch_seconds = FMA_SMALL_TRAINING_TRACKS / H100_CLIPS_PER_SECOND
    each = state_seconds + best_seconds
    return dict(
        assumed_epoch_seconds=epoch_seconds,
        state_write_seconds=state_seconds,
        best_weights_write_seconds=best_seconds,
        every_epoch=3600 / epoch_seconds * each,
        checkpoint_minutes=checkpoint_minutes,
        every_checkpoint_minutes=60 / checkpoint_minutes * each,
    )


def peak_memory() -> dict:
    """This process's peak RSS (and on CUDA, peak GPU memory) so far."""
    peaks = dict(peak_rss_bytes=peak_rss_bytes())
    if torch.cuda.is_available():
        peaks["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    return peaks


def launchable_from_here() -> None:
    """Launched processes import this file's functions: put its folder on their PYTHONPATH."""
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
    )


def measured_resume(peak_file: str, settings: TrainingSettings, threads: int, **paths) -> None:
    """One launched process: the run built and resumed from its state, as `train` does; then
    this process's peak memory."""
    torch.set_num_threads(threads)
    device, _ = best_device()
    processes = join(device)
    run = train_module.build_run(
        **paths, settings=settings.for_processes(processes.world_size), device=device, processes=processes
    )
    assert run.progress.step > 0, "the run did not resume"
    Path(peak_file.format(rank=processes.rank)).write_text(json.dumps(peak_memory()))
    leave(processes)


def resume_in_processes(workdir: Path, outputs: list, settings, threads: int, processes: int) -> list[int]:
    """Each of `processes` launched processes' peak RSS while it resumes the saved state."""
    launchable_from_here()
    manifest, vocabulary, pretrained, _, _, state = outputs[:6]
    peak_file = workdir / "resume-peak-{rank}.json"
    launch(
        "rehearse_full_size:measured_resume",
        dict(
            manifest_csv=str(manifest),
            vocabulary_tsv=str(vocabulary),
            pretrained_dir=str(pretrained),
            state_dir=str(state),
            settings=settings,
            threads=max(1, threads // processes),
            peak_file=str(peak_file),
        ),
        processes,
        workdir / "resume.log",
    )
    peaks = [json.loads(Path(str(peak_file).format(rank=rank)).read_text()) for rank in range(processes)]
    return [peak["peak_rss_bytes"] for peak in peaks]


PROBE_VALIDATION_SHARE = 8  # N training tracks, N / 8 validation tracks (fma_large: about 1 / 8)


def write_probe_tracks(root: Path, n_training: int) -> tuple[Path, Path]:
    """A manifest of N training and N / 8 validation tracks (one random 30 s feature file, linked
    for each: the probe reads the cache, not the features) and the vocabulary."""
    root.mkdir(parents=True)
    one = root / "features.npy"
    np.save(one, np.random.default_rng(0).normal(size=(frames_of(CLIP_SECONDS), 80)).astype(np.float16))
    n_validation = max(1, n_training // PROBE_VALIDATION_SHARE)
    rows = []
    for track_id in range(1, n_training + n_validation + 1):
        path = root / f"{track_id:06d}.npy"
        path.symlink_to(one)
        genre = GENRES[track_id % len(GENRES)]
        labels = [int(g == genre) for g in GENRES]
        split = "training" if track_id <= n_training else "validation"
        rows.append([track_id, split, genre, str(path), frames_of(CLIP_SECONDS), "-", "ok", *labels])
    return write_manifest(root, rows)


def write_random_probe_cache(folder: Path, manifest: Path, pretrained: Path) -> int:
    """A probe cache in rule probe_cache's format, of random pooled layers; its bytes."""
    folder.mkdir()
    config = Wav2Vec2BertConfig.from_pretrained(pretrained)
    window_frames = frames_of(CROP_SECONDS)
    shape = (config.num_hidden_layers + 1, config.hidden_size)
    splits = {}
    for split in probe_cache.SPLITS:
        tracks = read_split(manifest, split)
        windows = evaluation_windows(tracks.n_frames, window_frames)
        writer = probe_cache.ShardWriter(folder, f"{split}-00")
        for start in range(0, len(windows), 256):
            writer.add(torch.randn(len(windows[start : start + 256]), *shape))
        probe_cache.write_window_tracks(folder, split, windows)
        splits[split] = dict(tracks=len(tracks.track_ids), windows=len(windows), shards=writer.close())
    probe_cache.write_index(folder, manifest, pretrained, window_frames, config, splits)
    return sum(path.stat().st_size for path in folder.iterdir())


def probe_memory(workdir: str, pretrained: str, n_training: int, threads: int) -> dict:
    """In a process of its own: the probe cache of `n_training` tracks, a probe training of 2
    epochs from it (the train rule's call), the cache's bytes and the process's peak RSS."""
    torch.set_num_threads(threads)
    root = Path(workdir) / f"probe-{n_training}"
    manifest, vocabulary = write_probe_tracks(root, n_training)
    cache_bytes = write_random_probe_cache(root / "cache", manifest, Path(pretrained))
    settings = TrainingSettings.from_schema_defaults(
        TRAINING_SCHEMA, mode="probe", epochs=2, batch_size=64, crop_seconds=CROP_SECONDS, eval_batch_size=256
    )
    started = time.perf_counter()
    train_module.train(
        manifest,
        vocabulary,
        pretrained,
        root / "model",
        root / "log.csv",
        root / "state",
        root / "tensorboard",
        settings,
        probe_cache_dir=root / "cache",
        threads=threads,
    )
    return dict(
        training_tracks=n_training,
        probe_cache_bytes=cache_bytes,
        probe_training_seconds=time.perf_counter() - started,
        probe_peak_rss_bytes=peak_memory()["peak_rss_bytes"],
    )


def probe_at_sizes(workdir: Path, tiny: bool, sizes: list[int], threads: int) -> dict:
    """`probe_memory` at each size, each in a fresh process; the RSS growth against the cache's."""
    pretrained = workdir / "probe-pretrained"
    write_random_model(pretrained, tiny)
    runs = []
    for n_training in sorted(sizes):
        spawn = multiprocessing.get_context("spawn")  # a fresh process: its peak is this size's alone
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
            runs.append(
                pool.submit(probe_memory, str(workdir), str(pretrained), n_training, threads).result()
            )
        print(f"probe at {n_training} tracks: {runs[-1]}", flush=True)
    result = dict(runs=runs)
    if len(runs) > 1:
        first, last = runs[0], runs[-1]
        result["rss_growth_over_cache_growth"] = (
            last["probe_peak_rss_bytes"] - first["probe_peak_rss_bytes"]
        ) / (last["probe_cache_bytes"] - first["probe_cache_bytes"])
    return result


SCALING_MICRO_BATCH, SCALING_STEPS = 2, 2


def measured_training(peak_file: str, **train_kwargs) -> None:
    """One training process of `scaling`: train, then record this process's peak memory."""
    train_module.train(**train_kwargs)
    Path(peak_file.format(rank=os.environ.get("RANK", "0"))).write_text(json.dumps(peak_memory()))


def scaling(workdir: Path, max_processes: int, *, tiny: bool, threads: int) -> list[dict]:
    """Clips/s and per-process peak memory of 1 and `max_processes` training processes, each with
    and without gradient checkpointing; the micro-batch per process stays the same."""
    data = workdir / "scaling"
    data.mkdir()
    manifest, vocabulary = write_tracks(data, n_training=SCALING_STEPS * SCALING_MICRO_BATCH * max_processes)
    write_random_model(data / "pretrained", tiny)
    launchable_from_here()
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
    parser.add_argument(
        "--probe-tracks",
        type=int,
        nargs="+",
        metavar="N",
        help="also train a probe from a cache of N tracks (each N in a fresh process): its memory",
    )
    add_results_argument(parser, "rehearse_full_size")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        result = rehearse(Path(workdir), tiny=args.tiny, threads=args.threads, batch_size=args.batch_size)
        if args.processes:
            result["scaling"] = scaling(Path(workdir), args.processes, tiny=args.tiny, threads=args.threads)
        if args.probe_tracks:
            result["probe"] = probe_at_sizes(Path(workdir), args.tiny, args.probe_tracks, args.threads)
    print(json.dumps(result))
    write_results(args.results, "rehearse_full_size", result)


if __name__ == "__main__":
    main()
