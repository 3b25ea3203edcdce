"""Rule score: the trained model's probabilities for every track of one split, in one process
per GPU of the job (`resources: gpu`; `cpu_processes` without CUDA), or on the CPU."""

from fma_genre.io.logs import log_to
from fma_genre.runtime.processes import run_as_job
from fma_genre.scoring.job import write_split_scores

log_to(snakemake.log[0])
run_as_job(
    write_split_scores,
    dict(
        model_dir=snakemake.input.model,
        manifest_csv=snakemake.input.manifest,
        split=snakemake.wildcards.split,
        vocabulary_tsv=snakemake.input.vocabulary,
        scores_csv=snakemake.output.scores,
        batch_size=snakemake.params.batch_size,
    ),
    snakemake.resources,
    snakemake.threads,
    snakemake.log[0],
)
