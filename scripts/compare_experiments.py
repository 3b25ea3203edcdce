"""Rule compare_experiments: every experiment and seed side by side; results/metrics.json."""

from fma_genre.evaluation.comparison import compare_experiments
from fma_genre.io.logs import log_to

log_to(snakemake.log[0])
compare_experiments(
    run_metrics_jsons=snakemake.input.runs,
    runs=snakemake.params.runs,
    overrides=snakemake.params.overrides,
    primary_predictions_csv=snakemake.input.primary_predictions,
    metrics_json=snakemake.output.metrics,
    table_csv=snakemake.output.table,
    figure_png=snakemake.output.figure,
    predictions_csv=snakemake.output.predictions,
)
