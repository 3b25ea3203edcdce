"""Several processes (one per GPU, or N CPU processes with gloo) on PyTorch's own stack:
torchrun's launcher (`torch.distributed.launcher`) starts them, `torch.distributed` connects
them, DDP averages the gradients.

A launched function finds its place in `join()`; with one process nothing is launched and no
process group exists, so the single-process path stays the plain one.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pickle
import shlex
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from fma_genre.features.loader import LOADER_WORKERS_VARIABLE
from fma_genre.io.logs import FORMAT
from fma_genre.runtime.gpu_claims import claim_for_job

log = logging.getLogger(__name__)

LAUNCHED_MODULE = "fma_genre.runtime.processes"  # what launched processes and tasks run (`python -m`)
# A rank that died or hangs turns into an error on the others after this long, not a wait forever.
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class Processes:
    """This process's place among the run's processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """The process that writes (checkpoints, logs, the model)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def processes_to_start(gpus: int, cpu_processes: int | None) -> int:
    """One process per GPU the job holds (`gpus`, its `resources: gpu`; at most, and if 0 all,
    the GPUs visible: CUDA_VISIBLE_DEVICES applies); without CUDA, `cpu_processes` (default 1)."""
    if torch.cuda.is_available():
        visible = torch.cuda.device_count()
        return min(gpus, visible) if gpus else visible
    return cpu_processes or 1


def run_as_job(
    function: Callable, kwargs: dict, resources, threads: int, log_path: str | os.PathLike
) -> None:
    """`function(**kwargs, threads=...)` (a module-level function) as a rule job's resources say:
    one process per GPU (`gpu`: claimed on this host, runtime/gpu_claims.py), or `cpu_processes`
    without CUDA, sharing the job's `threads`, each with `loader_workers` loader processes; on
    several SLURM tasks (`tasks`, with `mpi`: the command that starts them, e.g. "srun"), that
    many processes in each task. One process: a plain call, here. (The rule script imports
    `function` itself, so that the rule's code inputs include its module.)"""
    srun = resources.get("mpi")
    tasks = resources.get("tasks", 1) if srun else 1
    if "loader_workers" in resources:  # for every process of the job (features/loader.py)
        os.environ[LOADER_WORKERS_VARIABLE] = str(resources["loader_workers"])
    # Before anything starts CUDA: the claim decides which GPUs this job's processes see.
    claim = claim_for_job(resources.get("gpu", 0)) if tasks == 1 else None
    try:
        processes = processes_to_start(resources.get("gpu", 0) // tasks, resources.get("cpu_processes"))
        kwargs = kwargs | dict(threads=max(1, threads // processes))
        target = f"{function.__module__}:{function.__name__}"
        if tasks > 1:
            launch_on_every_task(srun, tasks, threads, target, kwargs, processes, log_path)
        elif processes > 1:
            launch(target, kwargs, processes, log_path)
        else:
            function(**kwargs)
    finally:
        if claim is not None:
            claim.release()


def function_of(target: str):
    """The function a "module:function" target names."""
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


@dataclass(frozen=True)
class SlurmTasks:
    """The tasks of a SLURM job that trains on several nodes: one launcher per task, each
    starting its processes; they meet at task 0's host."""

    count: int
    index: int
    host: str
    job_id: str

    @classmethod
    def of_this_job(cls) -> SlurmTasks:
        """From SLURM's environment (inside `srun`; the node list is the job's)."""
        hosts = subprocess.run(
            ["scontrol", "show", "hostnames", os.environ["SLURM_JOB_NODELIST"]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return cls(
            int(os.environ["SLURM_NTASKS"]),
            int(os.environ["SLURM_PROCID"]),
            hosts[0],
            os.environ["SLURM_JOB_ID"],
        )

    @property
    def endpoint(self) -> str:
        # A port of this job's own: two jobs on one node do not meet.
        return f"{self.host}:{20000 + int(self.job_id) % 20000}"


@contextlib.contextmanager
def arguments_file(kwargs: dict, folder: str | os.PathLike | None = None) -> Iterator[str]:
    """The path of a temporary file of `kwargs`, for the processes a launcher starts to read
    (`read_arguments`); removed afterwards. Pickled, so that arguments such as
    `TrainingSettings` arrive as they were given; only this job's own processes read it."""
    with tempfile.NamedTemporaryFile("wb", suffix=".pickle", delete=False, dir=folder) as file:
        pickle.dump(kwargs, file)
    try:
        yield file.name
    finally:
        os.unlink(file.name)


def read_arguments(path: str) -> dict:
    return pickle.loads(Path(path).read_bytes())


def launch(
    target: str, kwargs: dict, processes: int, log_path: str | os.PathLike, tasks: SlurmTasks | None = None
) -> None:
    """`target(**kwargs)` ("module:function") in `processes` processes started by torchrun's
    launcher (its elastic agent and c10d rendezvous), each `python -m fma_genre.runtime.processes`;
    they append their log records to `log_path`. `tasks`: this launcher is one of a SLURM job's
    tasks, whose processes all train together. A process that fails fails the launch
    (`ChildFailedError`), after the agent has stopped the others."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    nodes = tasks.count if tasks else 1
    config = LaunchConfig(
        min_nodes=nodes,
        max_nodes=nodes,
        nproc_per_node=processes,
        run_id=tasks.job_id if tasks else uuid.uuid4().hex,
        rdzv_backend="c10d",
        rdzv_endpoint=tasks.endpoint if tasks else "127.0.0.1:0",
        rdzv_configs=dict(is_host=tasks.index == 0) if tasks else {},
        max_restarts=0,  # a failed process fails the run; Snakemake's retry resumes it
        monitor_interval=0.5,
    )
    # The agent turns these signals into an exception that stops the processes; it does not
    # put the caller's handlers back.
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        with arguments_file(kwargs) as arguments:
            elastic_launch(config, sys.executable)("-m", LAUNCHED_MODULE, target, arguments, str(log_path))
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def launch_on_every_task(
    srun: str,
    tasks: int,
    cpus_per_task: int,
    target: str,
    kwargs: dict,
    processes: int,
    log_path: str | os.PathLike,
) -> None:
    """`launch` once in each of `tasks` SLURM tasks of this job (`srun`: the command that starts
    them, e.g. "srun"), each with `processes` processes. Runs in the job's batch step, where the
    plugin leaves no task settings behind: they are given here."""
    # Beside the log, on the shared file system: every node reads it.
    with arguments_file(kwargs, folder=Path(log_path).parent) as arguments:
        subprocess.run(
            [
                *shlex.split(srun),
                f"--ntasks={tasks}",
                f"--cpus-per-task={cpus_per_task}",
                sys.executable,
                "-m",
                LAUNCHED_MODULE,
                "--task",
                target,
                arguments,
                str(processes),
                str(log_path),
            ],
            check=True,
        )


def launch_as_task(target: str, kwargs_file: str, processes: str, log_path: str) -> None:
    """One SLURM task of `launch_on_every_task`: its launcher."""
    launch(target, read_arguments(kwargs_file), int(processes), log_path, SlurmTasks.of_this_job())


def run_as_launched_process(target: str, kwargs_file: str, log_path: str) -> None:
    """One launched process: log records to `log_path` (the main process's at INFO, tagged with
    the rank), then `target(**kwargs)`."""
    rank = int(os.environ["RANK"])
    stream = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    sys.stderr = stream  # tracebacks; tqdm bars are the main process's only
    logging.basicConfig(
        stream=stream,
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=FORMAT.replace("%(levelname)s", f"%(levelname)s rank {rank}"),
        force=True,
    )
    function_of(target)(**read_arguments(kwargs_file))


def join(device: torch.device) -> Processes:
    """This process's `Processes`, joining the process group when a launcher started several
    (`device`: this process's, from `runtime.devices.best_device`)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Processes()
    processes = Processes(int(os.environ["RANK"]), world_size, int(os.environ["LOCAL_RANK"]))
    if not dist.is_initialized():
        # NCCL for the gradients on GPUs; gloo for the small CPU tensors and objects.
        backend = "cuda:nccl,cpu:gloo" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    return processes


def local_rank() -> int:
    """This process's index on its node (0 without a launcher): its GPU."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def leave(processes: Processes) -> None:
    if processes.distributed and dist.is_initialized():
        dist.destroy_process_group()


def any_process(flags, processes: Processes):
    """Each of `flags` (a bool, or a tuple of them) true on every process when it is true on one
    (e.g. SIGTERM reached only some)."""
    if not processes.distributed:
        return flags
    values = torch.tensor(flags, dtype=torch.int32).reshape(-1)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    found = tuple(bool(v) for v in values.tolist())
    return found if isinstance(flags, tuple) else found[0]


def sum_over_processes(values: torch.Tensor, processes: Processes) -> torch.Tensor:
    """`values` summed over the processes, where they are (a GPU's go through NCCL)."""
    if processes.distributed:
        dist.all_reduce(values)
    return values


def gather_in_rank_order(part, processes: Processes) -> list:
    """Every process's `part`, in rank order, on every process."""
    if not processes.distributed:
        return [part]
    parts = [None] * processes.world_size
    dist.all_gather_object(parts, part)
    return parts


def from_main(value, processes: Processes):
    """The main process's `value`, on every process."""
    if not processes.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(processes: Processes) -> None:
    if processes.distributed:
        dist.barrier()


if __name__ == "__main__":
    if sys.argv[1] == "--task":
        launch_as_task(*sys.argv[2:])
    else:
        run_as_launched_process(*sys.argv[1:])
