"""The `score` rule's work: a split's scores as a CSV (`tables.py`), in one process or several.

Apart from `windows.py` so that the training's code (which scores its validation split) does not
include the CSV writer.
"""

from __future__ import annotations

from fma_genre.data.vocabulary import Vocabulary
from fma_genre.runtime.devices import best_device
from fma_genre.runtime.processes import join, leave
from fma_genre.scoring.tables import write_scores_csv
from fma_genre.scoring.windows import score_split


def write_split_scores(
    model_dir: str,
    manifest_csv: str,
    split: str,
    vocabulary_tsv: str,
    scores_csv: str,
    *,
    batch_size: int,
    threads: int,
) -> None:
    """`score_split` with the vocabulary's labels, written to `scores_csv` (`tables.py`); under a
    launcher every process scores its part and the main one writes."""
    device, _ = best_device()
    processes = join(device)
    vocabulary = Vocabulary.read(vocabulary_tsv)
    track_ids, scores, excluded = score_split(
        model_dir,
        manifest_csv,
        split,
        batch_size=batch_size,
        threads=threads,
        labels=vocabulary.titles,
        processes=processes,
    )
    if processes.is_main:
        write_scores_csv(scores_csv, track_ids, scores, vocabulary.columns, excluded)
    leave(processes)
