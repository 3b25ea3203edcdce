"""`fma-genre-predict` with a tiny randomly initialised Wav2Vec2-BERT classifier."""

import json

import numpy as np
import pytest
import soundfile
import torch
from transformers import (
    SeamlessM4TFeatureExtractor,
    Wav2Vec2BertConfig,
    Wav2Vec2BertForSequenceClassification,
)

from fma_genre.predict import main

GENRES = {0: "Rock", 1: "Electronic", 2: "Folk"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    config = Wav2Vec2BertConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        output_hidden_size=32,
        feature_projection_input_dim=160,
        classifier_proj_size=16,
        num_labels=3,
        id2label=GENRES,
        label2id={title: i for i, title in GENRES.items()},
        problem_type="multi_label_classification",
    )
    Wav2Vec2BertForSequenceClassification(config).save_pretrained(directory)
    SeamlessM4TFeatureExtractor(
        feature_size=80, num_mel_bins=80, sampling_rate=16000, padding_value=1, stride=2
    ).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    t = np.arange(int(2.5 * 22050)) / 22050
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    return path


def test_text_output_lists_the_top_labels(model_dir, clip, capsys):
    assert main(["--model", str(model_dir), "--top", "2", "--window-seconds", "1", str(clip)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(clip)
    assert len(lines) == 3
    scores = [float(line.split()[0]) for line in lines[1:]]
    assert all(0 <= s <= 1 for s in scores) and scores == sorted(scores, reverse=True)
    assert {line.split()[1] for line in lines[1:]} < set(GENRES.values())


def test_json_output_and_unreadable_files(model_dir, clip, tmp_path, capsys):
    (tmp_path / "empty.mp3").write_bytes(b"")
    assert main(["--model", str(model_dir), "--json", str(clip), str(tmp_path / "empty.mp3")]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"{tmp_path / 'empty.mp3'}: empty file\n"
    [result] = json.loads(captured.out)
    assert result["path"] == str(clip)
    assert sorted(entry["label"] for entry in result["top"]) == sorted(GENRES.values())
    assert all(0 <= entry["score"] <= 1 for entry in result["top"])
