"""How the `transformers` pipeline's whole-clip scores differ from the pipeline's windowed scores,
on the test tracks of a finished run (e.g. the demo's):

    .venv/bin/python perf/pipeline_vs_windows.py demo

The pipeline (`transformers.pipeline("audio-classification", model=...)`) normalises the whole
clip once and pools over all of it; the project (the `score` rule, `fma-genre-predict`) scores
windows of the training crop length, each normalised on its own, and averages the windows'
probabilities. Prints one JSON line: the mean and largest probability difference over tracks and
labels, how often the two agree on the top genre, and the top-genre accuracy of each.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import pipeline

from fma_genre.data.vocabulary import Vocabulary
from fma_genre.evaluation.metrics import predict_top_genre
from fma_genre.features.audio import decode_mono_16k
from fma_genre.models.classifier import load_classifier
from fma_genre.scoring.windows import score_audio_files

from record import add_results_argument, write_results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path, help="the run's working directory (holds data/ and results/)")
    parser.add_argument("--threads", type=int, default=2)
    add_results_argument(parser, "pipeline_vs_windows")
    args = parser.parse_args(argv)
    args.results = args.results.resolve()  # before the chdir
    os.chdir(args.workdir)
    torch.set_num_threads(args.threads)
    manifest = pd.read_csv("data/processed/final_feature_manifest.csv", keep_default_na=False)
    audio_path = pd.read_csv(next(Path("data/processed").glob("*_subset.csv"))).set_index("track_id")[
        "audio_path"
    ]
    test = manifest[
        (manifest["split"] == "test") & (manifest["status"] == "ok") & (manifest["genre_top"] != "")
    ]
    paths = [audio_path[track_id] for track_id in test["track_id"]]

    model = load_classifier("results/model").eval()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    windowed = score_audio_files(
        model, paths, batch_size=16, device=torch.device("cpu"), threads=args.threads
    )
    readable = [i for i, scores in enumerate(windowed) if not isinstance(scores, str)]
    paths, truth = [paths[i] for i in readable], test["genre_top"].to_numpy()[readable]
    windowed = np.stack([windowed[i] for i in readable])
    classify = pipeline("audio-classification", model="results/model", device="cpu")
    whole = np.array(
        [
            [
                {r["label"]: r["score"] for r in classify(decode_mono_16k(p), top_k=None)}[label]
                for label in labels
            ]
            for p in paths
        ]
    )
    # The top genre as metrics.json predicts it: the best-scoring top-level label.
    vocabulary = Vocabulary.read("data/processed/unified_genres.txt")
    assert vocabulary.titles == labels, "the model is not this run's vocabulary's"
    predicted = {
        name: predict_top_genre(s, vocabulary)[0] for name, s in (("windows", windowed), ("pipeline", whole))
    }
    difference = np.abs(whole - windowed)
    measured = dict(
        tracks=len(paths),
        mean_abs_probability_difference=float(difference.mean()),
        max_abs_probability_difference=float(difference.max()),
        top_genre_agreement=float((predicted["windows"] == predicted["pipeline"]).mean()),
        top_genre_accuracy_windows=float((predicted["windows"] == truth).mean()),
        top_genre_accuracy_pipeline=float((predicted["pipeline"] == truth).mean()),
    )
    print(json.dumps(measured))
    write_results(args.results, "pipeline_vs_windows", measured)


if __name__ == "__main__":
    main()
