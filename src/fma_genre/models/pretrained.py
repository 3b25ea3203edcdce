"""The pretrained Wav2Vec2-BERT that training starts from, fetched once into `data/models/`.

`fetch_pretrained` resolves the configured hub revision (a branch, tag or commit) to its commit
and downloads exactly that commit, so that training jobs need no internet and the same config
always trains from the same weights; `write_tiny_model` writes a small random model of the same
architecture for the demo and the tests. Both record where the weights came from in
`source.json` (model id, requested revision, resolved commit), which training copies into its
summary, the model card and the metrics.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from huggingface_hub import model_info, snapshot_download
from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel

from fma_genre.io.atomic import atomic_directory, write_text
from fma_genre.io.digests import sha1_of

SOURCE_FILE = "source.json"
TINY_MODEL_ID = "tiny random Wav2Vec2-BERT"

# w2v-bert-2.0's preprocessor_config.json: 80 Kaldi mel bins, pairs of frames stacked to 160
# (the values logmel.py reproduces; a test keeps the two equal).
FEATURE_EXTRACTOR_SETTINGS = dict(
    feature_size=80, num_mel_bins=80, sampling_rate=16000, padding_value=1.0, stride=2
)

# w2v-bert-2.0's architecture (relative_key positions clamped to [-64, 8], 160-wide input,
# depthwise kernel 31) at a size that trains in minutes on two CPU cores.
TINY_MODEL_CONFIG = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=128,
    feature_projection_input_dim=160,
    position_embeddings_type="relative_key",
    left_max_position_embeddings=64,
    right_max_position_embeddings=8,
    classifier_proj_size=64,
)

# The hub files a training job needs; everything else in the repository (e.g. w2v-bert-2.0's
# 2 GB fairseq2 checkpoint conformer_shaw.pt) stays behind.
PRETRAINED_FILES = ["*.json", "*.safetensors", "*.txt", "*.md"]
PYTORCH_WEIGHTS = ["pytorch_model*.bin"]  # only fetched for a repository without safetensors


def fetch_pretrained(model_id: str, out_dir: str | os.PathLike, revision: str | None = None) -> str:
    """Download the config, weights and preprocessor config of one hub commit into `out_dir`.

    `revision` (default: the main branch) is resolved to its commit first; returns the commit.
    """
    commit = model_info(model_id, revision=revision).sha
    with atomic_directory(out_dir) as staging:
        snapshot_download(model_id, revision=commit, local_dir=staging, allow_patterns=PRETRAINED_FILES)
        if not any(staging.glob("*.safetensors")):
            snapshot_download(model_id, revision=commit, local_dir=staging, allow_patterns=PYTORCH_WEIGHTS)
        # snapshot_download's bookkeeping for resuming into local_dir; not part of the model.
        shutil.rmtree(staging / ".cache", ignore_errors=True)
        write_source(staging, model_id, revision, commit)
    return commit


def feature_extractor() -> SeamlessM4TFeatureExtractor:
    """w2v-bert-2.0's feature extractor: what `transformers.pipeline` uses on raw audio."""
    return SeamlessM4TFeatureExtractor(**FEATURE_EXTRACTOR_SETTINGS)


def write_tiny_model(out_dir: str | os.PathLike, seed: int = 0) -> str:
    """Save a randomly initialised tiny Wav2Vec2-BERT (the same for the same seed) and its extractor.

    Its "commit" is the SHA1 of its weights file; it is returned.
    """
    with torch.random.fork_rng(devices=[]):  # leaves the caller's random stream untouched
        torch.manual_seed(seed)
        model = Wav2Vec2BertModel(Wav2Vec2BertConfig(**TINY_MODEL_CONFIG))
    with atomic_directory(out_dir) as staging:
        model.save_pretrained(staging)
        feature_extractor().save_pretrained(staging)
        commit = sha1_of(staging / "model.safetensors")
        write_source(staging, TINY_MODEL_ID, f"seed {seed}", commit)
    return commit


def write_source(model_dir: Path, model_id: str, revision: str | None, commit: str) -> None:
    record = dict(model_id=model_id, revision=revision, commit=commit)
    write_text(model_dir / SOURCE_FILE, json.dumps(record, indent=2) + "\n")


def read_source(model_dir: str | os.PathLike) -> dict:
    """{model_id, revision, commit} of pretrained weights written by this module."""
    path = Path(model_dir) / SOURCE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: pretrained weights must come from the model_weights rule, "
            "which records the model id and the resolved hub commit there"
        )
    return json.loads(path.read_text())
