"""Rule baseline: logistic regression on log-mel statistics, test-split scores."""

from fma_genre.evaluate import write_baseline_scores
from fma_genre.logs import log_to

log_to(snakemake.log[0])
write_baseline_scores(
    snakemake.input.manifest, snakemake.input.vocabulary, snakemake.output.scores, n_jobs=snakemake.threads
)
