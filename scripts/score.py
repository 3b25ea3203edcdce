"""Rule score: the trained model's probabilities for every track of one split (GPU if any)."""

from fma_genre.inference import score_split
from fma_genre.labels import read_vocabulary
from fma_genre.logs import log_to
from fma_genre.scores import write_scores_csv

log_to(snakemake.log[0])
vocabulary = read_vocabulary(snakemake.input.vocabulary)
track_ids, scores, excluded = score_split(
    snakemake.input.model,
    snakemake.input.manifest,
    snakemake.wildcards.split,
    batch_size=snakemake.params.batch_size,
    threads=snakemake.threads,
    labels=[genre.title for genre in vocabulary],
)
write_scores_csv(snakemake.output.scores, track_ids, scores, [genre.column for genre in vocabulary], excluded)
