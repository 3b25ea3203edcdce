"""Rule download: fetch one archive from the configured source and verify its SHA1."""

from pathlib import Path

from fma_genre.data.download import OFFICIAL_SHA1, fetch_archive, read_sha1sums
from fma_genre.io.logs import log_to

log_to(snakemake.log[0])
name = Path(snakemake.output.archive).name
checksums = snakemake.input.checksums if "checksums" in snakemake.input.keys() else None  # noqa: SIM118 - `in` would test the values
expected = read_sha1sums(checksums) if checksums else OFFICIAL_SHA1
if name not in expected:
    raise SystemExit(f"no SHA1 known for {name} in {checksums or 'the official list'}")
fetch_archive(
    snakemake.params.source,
    name,
    snakemake.output.archive,
    expected[name],
    retries=snakemake.params.retries,
)
