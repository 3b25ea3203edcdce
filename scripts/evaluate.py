"""Rule evaluate: test-split metrics of the model and the baseline, predictions and plots."""

from fma_genre.evaluate import evaluate
from fma_genre.logs import log_to

log_to(snakemake.log[0])
evaluate(
    model_dir=snakemake.input.model,
    training_log_csv=snakemake.input.training_log,
    baseline_scores_csv=snakemake.input.baseline_scores,
    manifest_csv=snakemake.input.manifest,
    vocabulary_tsv=snakemake.input.vocabulary,
    metrics_json=snakemake.output.metrics,
    predictions_csv=snakemake.output.predictions,
    confusion_matrix_png=snakemake.output.confusion_matrix,
    training_curves_png=snakemake.output.training_curves,
    subset=snakemake.params.subset,
    model_name=snakemake.params.model_name,
    batch_size=snakemake.params.batch_size,
    threads=snakemake.threads,
)
