"""The `score` rule's work: a split's scores as a CSV (`scores.py`), in one process or several.

Apart from `inference.py` so that the training's code (which scores its validation split) does
not include the CSV writer.
"""

from __future__ import annotations

from fma_genre.distributed import join, leave
from fma_genre.inference import best_device, score_split
from fma_genre.labels import read_vocabulary
from fma_genre.scores import write_scores_csv


def write_split_scores(model_dir: str, manifest_csv: str, split: str, vocabulary_tsv: str, scores_csv: str, *,
                       batch_size: int, threads: int) -> None:
    """`score_split` with the vocabulary's labels, written to `scores_csv` (`scores.py`); under a
    launcher every process scores its part and the main one writes."""
    device, _ = best_device()
    processes = join(device)
    vocabulary = read_vocabulary(vocabulary_tsv)
    track_ids, scores, excluded = score_split(
        model_dir, manifest_csv, split, batch_size=batch_size, threads=threads,
        labels=[genre.title for genre in vocabulary], processes=processes,
    )
    if processes.is_main:
        write_scores_csv(scores_csv, track_ids, scores, [genre.column for genre in vocabulary], excluded)
    leave(processes)
