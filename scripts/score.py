"""Rule score: the trained model's probabilities for every track of one split, in one process
per GPU of the job (`resources: gpu`; `cpu_processes` without CUDA), or on the CPU."""

from fma_genre.distributed import launch, processes_to_start
from fma_genre.inference import write_split_scores
from fma_genre.logs import log_to

log_to(snakemake.log[0])
processes = processes_to_start(snakemake.resources.get("gpu", 0), snakemake.resources.get("cpu_processes"))
arguments = dict(
    model_dir=snakemake.input.model,
    manifest_csv=snakemake.input.manifest,
    split=snakemake.wildcards.split,
    vocabulary_tsv=snakemake.input.vocabulary,
    scores_csv=snakemake.output.scores,
    batch_size=snakemake.params.batch_size,
    threads=max(1, snakemake.threads // processes),
)
if processes == 1:
    write_split_scores(**arguments)
else:
    launch("fma_genre.inference:write_split_scores", arguments, processes, snakemake.log[0])
