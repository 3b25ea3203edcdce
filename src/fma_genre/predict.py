"""`fma-genre-predict`: the genre scores a trained model gives any audio file.

The audio is cut into near-equal windows of about the training crop length, since the model
learnt from crops normalised one by one; the label probabilities are averaged over the windows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification
from transformers.utils import logging as transformers_logging

from fma_genre.audio import SAMPLING_RATE, UnreadableAudio, decode_mono_16k


def genre_scores(audio_path: str | Path, extractor, model, window_seconds: float) -> dict[str, float]:
    """{label: probability} for one file, labels in the model's order."""
    waveform = decode_mono_16k(audio_path)
    n_windows = max(1, round(len(waveform) / (window_seconds * SAMPLING_RATE)))
    with torch.no_grad():
        probabilities = [
            torch.sigmoid(
                model(**extractor(window, sampling_rate=SAMPLING_RATE, return_tensors="pt")).logits[0]
            )
            for window in np.array_split(waveform, n_windows)
        ]
    mean = torch.stack(probabilities).mean(dim=0).tolist()
    return {model.config.id2label[i]: score for i, score in enumerate(mean)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fma-genre-predict", description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="+", type=Path, help="audio files (any format libsndfile decodes)")
    parser.add_argument("--model", type=Path, default=Path("results/model"), help="trained model directory")
    parser.add_argument("--top", type=int, default=5, help="how many of the best labels to show per file")
    parser.add_argument(
        "--window-seconds", type=float, default=10.0, help="window length (the training crop_seconds)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of text")
    args = parser.parse_args(argv)

    transformers_logging.disable_progress_bar()  # stderr carries only the files that failed
    extractor = AutoFeatureExtractor.from_pretrained(args.model)
    model = AutoModelForAudioClassification.from_pretrained(args.model).eval()
    results, failed = [], False
    for path in args.audio:
        try:
            scores = genre_scores(path, extractor, model, args.window_seconds)
        except (UnreadableAudio, FileNotFoundError) as error:
            print(f"{path}: {error}", file=sys.stderr)
            failed = True
            continue
        best = sorted(scores.items(), key=lambda item: item[1], reverse=True)[: args.top]
        results.append(
            {"path": str(path), "top": [{"label": label, "score": score} for label, score in best]}
        )
        if not args.json:
            print(path)
            for label, score in best:
                print(f"  {score:.3f}  {label}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
