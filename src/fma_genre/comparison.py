"""The comparison stage: every experiment and seed side by side (results/experiments.csv and
.png) and results/metrics.json, the mission's target: the primary run's metrics document (its
`model`, `baseline` and `data`) plus `experiments`, every run's metrics and their spread."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence

from fma_genre.atomic import atomic_path
from fma_genre.evaluate import write_metrics_json
from fma_genre.experiments import experiments_document, experiments_table, plot_experiments, write_experiments_csv

log = logging.getLogger(__name__)


def compare_experiments(
    *,
    run_metrics_jsons: Sequence[str],
    runs: Sequence[Mapping],
    overrides: Mapping[str, Mapping],
    primary_predictions_csv: str,
    metrics_json: str,
    table_csv: str,
    figure_png: str,
    predictions_csv: str,
) -> dict:
    """`runs[i]` ({experiment, seed}) is the run of `run_metrics_jsons[i]`; the first is the primary."""
    documents = [json.loads(open(path).read()) for path in run_metrics_jsons]
    by_experiment: dict[str, dict[int, Mapping]] = {}
    for run, document in zip(runs, documents):
        by_experiment.setdefault(run["experiment"], {})[int(run["seed"])] = document["model"]
    primary = documents[0]
    table = experiments_table(by_experiment, primary["baseline"])
    write_experiments_csv(table, table_csv)
    plot_experiments(table, figure_png)
    document = {**primary, "experiments": experiments_document(by_experiment, overrides)}
    document["model"] = {**primary["model"], "experiment": runs[0]["experiment"], "seed": int(runs[0]["seed"])}
    write_metrics_json(document, metrics_json)
    with atomic_path(predictions_csv) as tmp:
        shutil.copyfile(primary_predictions_csv, tmp)
    for name, seeds in by_experiment.items():
        accuracy = [metrics["top_genre_accuracy"] for metrics in seeds.values()]
        log.info("%s: top-genre accuracy %s over seeds %s", name, ", ".join(f"{a:.4f}" for a in accuracy),
                 ", ".join(map(str, seeds)))
    return document
