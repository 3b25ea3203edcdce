"""Rule primary_model: results/model is the primary experiment's first seed (hard links)."""

from fma_genre.atomic import link_directory
from fma_genre.logs import log_to

log_to(snakemake.log[0])
link_directory(snakemake.input.model, snakemake.output.model)
