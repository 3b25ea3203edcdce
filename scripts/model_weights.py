"""Rule model_weights: the pretrained weights of one hub commit, or the demo's tiny random model."""

from fma_genre.io.logs import log_to
from fma_genre.models.pretrained import fetch_pretrained, write_tiny_model

log_to(snakemake.log[0])
if snakemake.params.tiny:
    write_tiny_model(snakemake.output.weights)  # one for every experiment and seed
else:
    fetch_pretrained(snakemake.params.model, snakemake.output.weights, revision=snakemake.params.revision)
