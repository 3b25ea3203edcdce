"""Rule train: one experiment and seed; its best validation epoch is its model. One process per
GPU of the job (`resources: gpu`), `cpu_processes` without CUDA; on several nodes, one launcher
per SLURM task (`tasks`, `mpi`): see `distributed.run_as_job`."""

from fma_genre.distributed import run_as_job
from fma_genre.logs import log_to
from fma_genre.train import train

# Echoed to the job's stderr: each SLURM attempt's log keeps its own story (SIGTERM, resume).
log_to(snakemake.log[0], echo=True)
run_as_job(
    train,
    dict(
        manifest_csv=snakemake.input.manifest,
        vocabulary_tsv=snakemake.input.vocabulary,
        pretrained_dir=snakemake.input.weights,
        model_out_dir=snakemake.output.model,
        training_log_csv=snakemake.output.training_log,
        state_dir=snakemake.params.state_dir,
        tensorboard_dir=snakemake.params.tensorboard_dir,
        run_name=f"{snakemake.wildcards.experiment}/seed{snakemake.wildcards.seed}",
        **snakemake.params.training,
    ),
    snakemake.resources,
    snakemake.threads,
    snakemake.log[0],
)
