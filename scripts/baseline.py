"""Rule baseline: logistic regression on log-mel statistics; C and thresholds from validation."""

from fma_genre.evaluation.baseline import write_baseline
from fma_genre.io.logs import log_to

log_to(snakemake.log[0])
write_baseline(
    snakemake.input.manifest,
    snakemake.input.status,
    snakemake.input.vocabulary,
    snakemake.output.scores,
    snakemake.output.summary,
    selection_metric=snakemake.params.selection_metric,
    n_jobs=snakemake.threads,
)
