"""Rule train: one experiment and seed; its best validation epoch is its model."""

from fma_genre.logs import log_to
from fma_genre.train import train

# Echoed to the job's stderr: each SLURM attempt's log keeps its own story (SIGTERM, resume).
log_to(snakemake.log[0], echo=True)
train(
    snakemake.input.manifest,
    snakemake.input.vocabulary,
    snakemake.input.weights,
    snakemake.output.model,
    snakemake.output.training_log,
    snakemake.params.state_dir,
    snakemake.params.tensorboard_dir,
    threads=snakemake.threads,
    run_name=f"{snakemake.wildcards.experiment}/seed{snakemake.wildcards.seed}",
    **snakemake.params.training,
)
