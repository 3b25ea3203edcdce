"""Rule log_mel_shard: log-mel frames for every track of one FMA folder, and its status table."""

from fma_genre.features.shard import extract_shard
from fma_genre.io.logs import log_to

log_to(snakemake.log[0])
extract_shard(
    subset_csv=snakemake.input.table,
    shard=snakemake.wildcards.shard,
    features_dir=snakemake.output.features,
    status_csv=snakemake.output.status,
    min_clip_seconds=snakemake.params.min_clip_seconds,
    threads=snakemake.threads,
)
