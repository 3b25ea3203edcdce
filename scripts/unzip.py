"""Rule unzip: extract one archive atomically, verifying each member against its checksums."""

from pathlib import Path

from fma_genre.data.archive import extract_verified
from fma_genre.io.logs import log_to

log_to(snakemake.log[0])
folder = Path(snakemake.output.folder)
extract_verified(snakemake.input.archive, folder, root_name=folder.name)
