"""Rule probe_cache: the frozen backbone's pooled outputs of every training and validation window,
for the probe experiments of one crop length (`fma_genre.training.probe_cache`)."""

from fma_genre.io.logs import log_to
from fma_genre.runtime.processes import run_as_job
from fma_genre.training.probe_cache import write_probe_cache

log_to(snakemake.log[0])
run_as_job(
    write_probe_cache,
    dict(
        manifest_csv=snakemake.input.manifest,
        pretrained_dir=snakemake.input.weights,
        cache_dir=snakemake.output.cache,
        window_seconds=float(snakemake.wildcards.crop),
        batch_size=snakemake.params.batch_size,
    ),
    snakemake.resources,
    snakemake.threads,
    snakemake.log[0],
)
