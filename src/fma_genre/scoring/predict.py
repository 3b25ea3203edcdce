"""`fma-genre-predict`: the genre scores a trained model gives any audio file.

Each file is cut into windows of the model's training crop length (its `config.window_seconds`)
and scored as the pipeline scores the test split; files are decoded in parallel and their
windows batched together, on the GPU when there is one. A label counts as predicted when its
score reaches the threshold tuned for it on the validation split (`config.label_thresholds`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from transformers.utils import logging as transformers_logging

from fma_genre.models.classifier import load_classifier
from fma_genre.runtime.devices import best_device
from fma_genre.scoring.windows import score_audio_files

MODEL_FILES = ("config.json", "model.safetensors")


def positive(kind: type):
    """An argparse type: a number of `kind` above 0."""

    what = "a whole number" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} above 0, got {text!r}") from None
        if not value > 0:  # NaN too
            raise argparse.ArgumentTypeError(f"expected {what} above 0, got {text}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fma-genre-predict",
        description=__doc__.splitlines()[0],
        epilog="Text output marks with * each label at or above its tuned threshold. Exits 1 when "
        "a file was refused (unreadable, or shorter than --min-seconds): the others are still scored.",
    )
    parser.add_argument("audio", nargs="+", type=Path, help="audio files (any format libsndfile decodes)")
    parser.add_argument(
        "--model",
        type=Path,
        default=Path("results/model"),
        help="trained model directory (config.json, model.safetensors)",
    )
    parser.add_argument(
        "--top", type=positive(int), default=5, help="how many of the best labels to show per file"
    )
    parser.add_argument(
        "--window-seconds",
        type=positive(float),
        help="window length (default: the model's training crop length)",
    )
    parser.add_argument(
        "--min-seconds",
        type=positive(float),
        help="shorter clips are refused, not scored (default: half the window): a window of "
        "mostly padding gets confident labels it did not hear",
    )
    parser.add_argument("--batch-size", type=positive(int), default=16, help="windows per forward pass")
    parser.add_argument(
        "--threads", type=positive(int), default=2, help="CPU threads (decoding, and the model on CPU)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of text")
    return parser


def check_model_dir(arguments: argparse.ArgumentParser, model_dir: Path) -> None:
    """A usage error (exit 2) unless `model_dir` holds a saved model."""
    missing = [name for name in MODEL_FILES if not (model_dir / name).is_file()]
    if not model_dir.is_dir() or missing:
        found = "no such folder" if not model_dir.is_dir() else f"no {' or '.join(missing)} in it"
        arguments.error(
            f"--model {model_dir}: {found}; a model folder holds {' and '.join(MODEL_FILES)}, "
            "as training saves them (e.g. results/model)"
        )


def main(argv: list[str] | None = None) -> int:
    arguments = parser()
    args = arguments.parse_args(argv)
    check_model_dir(arguments, args.model)
    transformers_logging.disable_progress_bar()  # stderr carries only the files that failed
    torch.set_num_threads(args.threads)
    device, _ = best_device()
    model = load_classifier(args.model, device=device)
    if args.window_seconds is not None:
        model.config.window_seconds = args.window_seconds
    if getattr(model.config, "window_seconds", None) is None:
        arguments.error(f"{args.model} does not record its window length: give --window-seconds")
    min_seconds = args.min_seconds or model.config.window_seconds / 2
    thresholds = getattr(model.config, "label_thresholds", None) or {}
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

    results, failed = [], False
    for path, scores in zip(
        args.audio,
        score_audio_files(
            model,
            args.audio,
            batch_size=args.batch_size,
            device=device,
            threads=args.threads,
            min_seconds=min_seconds,
        ),
    ):
        if isinstance(scores, str):
            print(f"{path}: refused: {scores}", file=sys.stderr)
            results.append({"path": str(path), "refused": scores})
            failed = True
            continue
        ranked = sorted(zip(labels, scores.tolist()), key=lambda item: item[1], reverse=True)
        results.append(
            {
                "path": str(path),
                "top": [{"label": label, "score": score} for label, score in ranked[: args.top]],
                "predicted": [label for label, score in ranked if score >= thresholds.get(label, 0.5)],
            }
        )
        if not args.json:
            print(path)
            for label, score in ranked[: args.top]:
                mark = " *" if score >= thresholds.get(label, 0.5) else ""
                print(f"  {score:.3f}  {label}{mark}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
