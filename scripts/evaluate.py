"""Rule evaluate: test-split metrics of the model and the baseline, from their score tables."""

from fma_genre.evaluation.evaluate import evaluate
from fma_genre.io.logs import log_to

log_to(snakemake.log[0])
evaluate(
    model_dir=snakemake.input.model,
    test_scores_csv=snakemake.input.test_scores,
    baseline_scores_csv=snakemake.input.baseline_scores,
    baseline_summary_json=snakemake.input.baseline_summary,
    manifest_csv=snakemake.input.manifest,
    vocabulary_tsv=snakemake.input.vocabulary,
    metrics_json=snakemake.output.metrics,
    predictions_csv=snakemake.output.predictions,
    subset=snakemake.params.subset,
)
