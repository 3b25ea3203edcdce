"""Rule multihot_labels: multi-hot labels and the unified genre vocabulary."""

from pathlib import Path

from fma_genre.data.labels import write_multihot
from fma_genre.io.logs import log_to

log_to(snakemake.log[0])
write_multihot(
    snakemake.input.table,
    Path(snakemake.input.metadata) / "genres.csv",
    snakemake.params.min_genre_tracks,
    snakemake.output.multihot,
    snakemake.output.vocabulary,
)
