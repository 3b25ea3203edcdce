"""Rule demo_archives: write the synthetic FMA-like archives of the demo."""

from pathlib import Path

from fma_genre.demo.archives import write_demo_archives
from fma_genre.io.logs import log_to

log_to(snakemake.log[0])
write_demo_archives(
    Path(snakemake.output.sha1sums).parent,
    tracks_per_genre=snakemake.params.tracks_per_genre,
    seed=snakemake.params.seed,
    workers=snakemake.threads,
)
