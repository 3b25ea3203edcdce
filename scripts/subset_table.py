"""Rule subset_table: one row per track of the configured subset, from tracks.csv."""

from pathlib import Path

from fma_genre.data.metadata import write_subset_csv
from fma_genre.io.logs import log_to

log_to(snakemake.log[0])
write_subset_csv(
    Path(snakemake.input.metadata) / "tracks.csv",
    snakemake.wildcards.subset,
    snakemake.params.audio_dir,
    snakemake.output.table,
)
