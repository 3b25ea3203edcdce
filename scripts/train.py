"""Rule train: one experiment and seed; its best validation epoch is its model.

One process per GPU of the job (`resources: gpu`), or `resources: cpu_processes` on a machine
without CUDA. On several nodes (a SLURM job with `tasks` and `mpi: "srun"`), `srun` starts one
launcher per task, each with its node's processes.
"""

from fma_genre.distributed import launch, launch_on_every_task, processes_to_start
from fma_genre.logs import log_to
from fma_genre.train import train

# Echoed to the job's stderr: each SLURM attempt's log keeps its own story (SIGTERM, resume).
log_to(snakemake.log[0], echo=True)
srun = snakemake.resources.get("mpi")
tasks = snakemake.resources.get("tasks", 1) if srun else 1
processes = processes_to_start(snakemake.resources.get("gpu", 0) // tasks, snakemake.resources.get("cpu_processes"))
arguments = dict(
    manifest_csv=snakemake.input.manifest,
    vocabulary_tsv=snakemake.input.vocabulary,
    pretrained_dir=snakemake.input.weights,
    model_out_dir=snakemake.output.model,
    training_log_csv=snakemake.output.training_log,
    state_dir=snakemake.params.state_dir,
    tensorboard_dir=snakemake.params.tensorboard_dir,
    threads=max(1, snakemake.threads // processes),
    run_name=f"{snakemake.wildcards.experiment}/seed{snakemake.wildcards.seed}",
    **snakemake.params.training,
)
if tasks > 1:
    launch_on_every_task(srun, tasks, snakemake.threads, "fma_genre.train:train", arguments, processes, snakemake.log[0])
elif processes > 1:
    launch("fma_genre.train:train", arguments, processes, snakemake.log[0])
else:
    train(**arguments)
