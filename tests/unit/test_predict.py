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

from fma_genre.features.audio import decode_mono_16k
from fma_genre.features.logmel import kaldi_log_mel
from fma_genre.models.classifier import load_classifier
from fma_genre.scoring.predict import main
from fma_genre.scoring.windows import score_audio_files, track_probabilities, window_logits

GENRES = {0: "Rock", 1: "Electronic", 2: "Folk"}
THRESHOLDS = {"Rock": 0.0, "Electronic": 1.0, "Folk": 1.0}  # Rock always, the others never


def save_model(directory, **config_fields):
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
        **config_fields,
    )
    Wav2Vec2BertForSequenceClassification(config).save_pretrained(directory)
    SeamlessM4TFeatureExtractor(
        feature_size=80, num_mel_bins=80, sampling_rate=16000, padding_value=1, stride=2
    ).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    # What training saves: the window length and the tuned thresholds in the config.
    return save_model(tmp_path_factory.mktemp("model"), window_seconds=1.0, label_thresholds=THRESHOLDS)


def write_tone(path, seconds, hertz):
    t = np.arange(int(seconds * 22050)) / 22050
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * hertz * t)).astype(np.float32), 22050)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    return [write_tone(folder / f"tone{i}.wav", 2.5 + i, 220 * (i + 1)) for i in range(3)]


def test_text_output_lists_the_top_labels_and_marks_the_predicted_ones(model_dir, clips, capsys):
    assert main(["--model", str(model_dir), "--top", "2", str(clips[0])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(clips[0])
    assert len(lines) == 3
    scores = [float(line.split()[0]) for line in lines[1:]]
    assert all(0 <= s <= 1 for s in scores) and scores == sorted(scores, reverse=True)
    assert {line.split()[1] for line in lines[1:]} < set(GENRES.values())
    for line in lines[1:]:
        assert line.endswith(" *") == (line.split()[1] == "Rock")


def test_json_output_and_unreadable_files(model_dir, clips, tmp_path, capsys):
    (tmp_path / "empty.mp3").write_bytes(b"")
    assert main(["--model", str(model_dir), "--json", str(clips[0]), str(tmp_path / "empty.mp3")]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"{tmp_path / 'empty.mp3'}: refused: empty file\n"
    result, refused = json.loads(captured.out)
    assert refused == {"path": str(tmp_path / "empty.mp3"), "refused": "empty file"}
    assert result["path"] == str(clips[0])
    assert sorted(entry["label"] for entry in result["top"]) == sorted(GENRES.values())
    assert all(0 <= entry["score"] <= 1 for entry in result["top"])
    assert result["predicted"] == ["Rock"]  # by the model's tuned thresholds


def test_files_batched_together_score_as_each_alone_in_windows_of_the_model(model_dir, clips):
    model = load_classifier(model_dir).eval()
    together = score_audio_files(model, clips, batch_size=4, device=torch.device("cpu"), threads=2)
    for clip, scores in zip(clips, together):
        frames = kaldi_log_mel(decode_mono_16k(clip))
        # The model's 1 s windows: 100 frames each, so a 3.5 s clip has 3 or 4 windows.
        logits, tracks = window_logits(
            model, [frames], [len(frames)], 100, 16, torch.device("cpu"), desc="one file"
        )
        assert len(logits) == round(len(frames) / 100)
        np.testing.assert_allclose(scores, track_probabilities(logits, tracks, 1)[0], atol=1e-5)


def test_a_model_without_a_window_length_needs_one(tmp_path, clips, capsys):
    bare = save_model(tmp_path / "bare")
    with pytest.raises(SystemExit):
        main(["--model", str(bare), str(clips[0])])
    assert "give --window-seconds" in capsys.readouterr().err
    assert main(["--model", str(bare), "--window-seconds", "2", str(clips[0])]) == 0
