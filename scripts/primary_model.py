"""Rule primary_model: results/model is the primary experiment's first seed (hard links)."""

from fma_genre.io.logs import log_to
from fma_genre.models.saved_model import publish_model

log_to(snakemake.log[0])
publish_model(snakemake.input.model, snakemake.output.model)
