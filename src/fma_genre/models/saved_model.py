"""The trained model's folder: a `transformers` model plus what scoring and evaluation need.

Besides `save_pretrained`'s files it holds the feature-extractor config, `training_summary.json`
(best epoch, selection metric, validation scores, pretrained commit, settings, excluded tracks)
and a model card. Its `config.json` carries two fields of ours, so that any loader of the model
gets them: `window_seconds` (the training crop length: scoring windows) and `label_thresholds`
(per label, the decision threshold tuned on the validation split).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from fma_genre.io.atomic import atomic_directory, link_directory, write_text

SUMMARY_FILE = "training_summary.json"


def save_model(
    model,
    pretrained_dir: str | os.PathLike,
    model_out_dir: str | os.PathLike,
    summary: dict,
    *,
    window_seconds: float,
    thresholds: Mapping[str, float],
) -> None:
    """The model, its feature extractor config, model card and training summary, written atomically."""
    # Here, not at the top: evaluation and the comparison read this folder's JSON only, and
    # importing transformers costs each of their jobs ~5 s.
    from transformers import AutoFeatureExtractor

    model.config.window_seconds = window_seconds
    model.config.label_thresholds = dict(thresholds)
    with atomic_directory(model_out_dir) as staging:
        model.save_pretrained(staging)
        AutoFeatureExtractor.from_pretrained(pretrained_dir).save_pretrained(staging)
        write_text(staging / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
        write_text(staging / "README.md", model_card(summary, list(model.config.id2label.values())))


def publish_model(model_dir: str | os.PathLike, published_dir: str | os.PathLike) -> None:
    """`published_dir` (results/model) as the trained model of `model_dir`, in hard links."""
    # Snakemake dates a directory output by touching this file in it: a shared link would re-date
    # the run's model whenever results/model is dated, and make its scores look stale.
    link_directory(model_dir, published_dir, skip=[".snakemake_timestamp"])


def read_training_summary(model_dir: str | os.PathLike) -> dict:
    return json.loads((Path(model_dir) / SUMMARY_FILE).read_text())


def read_label_thresholds(model_dir: str | os.PathLike, label_titles: Sequence[str]) -> list[float]:
    """The tuned thresholds in `label_titles` order, read from config.json (the model stays unloaded)."""
    config_path = Path(model_dir) / "config.json"
    thresholds = json.loads(config_path.read_text()).get("label_thresholds") or {}
    missing = [title for title in label_titles if title not in thresholds]
    if missing:
        raise ValueError(f"{config_path}: no tuned label_thresholds for {missing[:5]}")
    return [thresholds[title] for title in label_titles]


def model_card(summary: dict, label_names: Sequence[str]) -> str:
    """README.md of the saved model: what it is, its validation scores, how it was trained."""
    validation = summary["validation"]
    scores = ", ".join(f"{name} {value:.4f}" for name, value in validation.items())
    settings = "\n".join(f"- {name}: {value}" for name, value in summary["settings"].items())
    source = summary["base_model_source"]
    return f"""---
base_model: {source["model_id"]}
pipeline_tag: audio-classification
tags: [music-genre-classification, multi-label, fma]
---
# Wav2Vec2-BERT music-genre classifier (FMA)

`{source["model_id"]}` (revision `{source["revision"]}`, commit `{source["commit"]}`) fine-tuned
on log-mel crops of Free Music Archive clips for {len(label_names)} genres, multi-label: one
sigmoid score per genre (`transformers.pipeline("audio-classification")` applies the sigmoid for
the `multi_label_classification` problem type).

The best epoch was selected on validation **{summary["selection_metric"]}**: epoch \
{summary["best_epoch"]} of {summary["epochs_trained"]}. Validation at that epoch: {scores}.

Score a clip as training saw it: windows of `config.window_seconds` ({summary["settings"]["crop_seconds"]} s),
probabilities averaged over the windows (`fma-genre-predict`). `config.label_thresholds` holds
per-label decision thresholds tuned for F1 on the validation split.

Trained on {summary["device"]} in {summary["training_seconds"]:.0f} s \
({summary["train_clips_per_second"]:.1f} training clips/s).

## Training settings
{settings}

## Labels
{", ".join(label_names)}
"""
