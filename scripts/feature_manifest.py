"""Rule feature_manifest: join labels and feature status into the final manifest."""

from fma_genre.logs import log_to
from fma_genre.manifest import build_manifest

log_to(snakemake.log[0])
build_manifest(snakemake.input.multihot, snakemake.input.status, snakemake.output.manifest)
