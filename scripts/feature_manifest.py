"""Rule feature_manifest: join labels and feature status into the final manifest."""

from fma_genre.features.manifest import build_manifest
from fma_genre.io.logs import log_to

log_to(snakemake.log[0])
build_manifest(snakemake.input.multihot, snakemake.input.status, snakemake.output.manifest)
