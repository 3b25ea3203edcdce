"""Rule primary_model: results/model is the primary experiment's first seed (hard links)."""

from fma_genre.atomic import link_directory
from fma_genre.logs import log_to

log_to(snakemake.log[0])
# Snakemake dates a directory output by touching this file in it: a shared link would re-date
# the run's model whenever results/model is dated, and make its scores look stale.
link_directory(snakemake.input.model, snakemake.output.model, skip=[".snakemake_timestamp"])
