"""Rule train: one experiment and seed; its best validation epoch is its model. One process per
GPU of the job (`resources: gpu`), `cpu_processes` without CUDA; on several nodes, one launcher
per SLURM task (`tasks`, `mpi`): see `fma_genre.runtime.processes.run_as_job`."""

from fma_genre.io.logs import log_to
from fma_genre.runtime.processes import run_as_job
from fma_genre.training.loop import train
from fma_genre.training.settings import TrainingSettings

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
        settings=TrainingSettings(**snakemake.params.training),
        probe_cache_dir=snakemake.input.get("probe_cache"),
        run_name=f"{snakemake.wildcards.experiment}/seed{snakemake.wildcards.seed}",
    ),
    snakemake.resources,
    snakemake.threads,
    snakemake.log[0],
)
