"""What a training run logs as it goes: TensorBoard event files (per step its loss, learning
rates and throughput; per epoch the training log's row), so that `tensorboard --logdir
results/experiments` compares every experiment and seed; and, when `MLFLOW_TRACKING_URI` is set
(MLflow's own variable), the same to MLflow, with the run's settings as parameters: buffered,
and sent in batches at every epoch's end and when the run stops, not one request per step (a
tracking server is often across a network)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

MLFLOW_RUN_ID_FILE = "mlflow_run_id"  # beside the events: a resumed run continues its MLflow run
MLFLOW_BATCH = 1000  # the most metrics one MLflow `log_batch` request takes


class RunLog:
    """Scalars by optimiser step. A resumed run drops the TensorBoard events logged after its
    checkpoint, so each step appears once."""

    def __init__(
        self, log_dir: str | Path, steps_done: int, run_name: str, settings: dict, enabled: bool = True
    ):
        """`enabled`: False in all but one of several training processes, which log nothing."""
        self.log_dir = Path(log_dir)
        self.writer = self.mlflow = None
        self.mlflow_pending = []  # MLflow `Metric`s not sent yet
        if not enabled:
            return
        if steps_done == 0:  # a fresh start: the events of an earlier (stale) run go
            shutil.rmtree(self.log_dir, ignore_errors=True)
        self.writer = SummaryWriter(str(self.log_dir), purge_step=steps_done + 1 if steps_done else None)
        self.mlflow = (
            start_mlflow_run(self.log_dir, run_name, settings)
            if os.environ.get("MLFLOW_TRACKING_URI")
            else None
        )

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is None:
            return
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        if self.mlflow:
            from mlflow.entities import Metric

            timestamp = int(time.time() * 1000)
            self.mlflow_pending += [Metric(name, value, timestamp, step) for name, value in values.items()]
            if len(self.mlflow_pending) >= MLFLOW_BATCH:
                self.send_to_mlflow()

    def send_to_mlflow(self) -> None:
        """The buffered metrics, in requests of at most `MLFLOW_BATCH`."""
        run_id = self.mlflow.active_run().info.run_id
        client = self.mlflow.MlflowClient()
        while self.mlflow_pending:
            client.log_batch(run_id, metrics=self.mlflow_pending[:MLFLOW_BATCH])
            del self.mlflow_pending[:MLFLOW_BATCH]

    def step(self, step: int, loss: float, learning_rates: dict[str, float], clips_per_second: float) -> None:
        self.scalars(
            {
                "train/loss": loss,
                "train/clips_per_second": clips_per_second,
                **{f"learning_rate/{part}": rate for part, rate in learning_rates.items()},
            },
            step,
        )

    def epoch(self, row: dict) -> None:
        """The training log's row of an epoch, at the epoch's last step."""
        self.scalars(
            {f"epoch/{name}": value for name, value in row.items() if name not in ("epoch", "step")},
            row["step"],
        )
        if self.writer is not None:
            self.writer.flush()
        if self.mlflow:
            self.send_to_mlflow()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        """Flush and close, also when training stops (SIGTERM, a crash): MLflow then records
        the run as KILLED, until its resume continues it."""
        if self.writer is not None:
            self.writer.close()
        if self.mlflow:
            self.send_to_mlflow()
            self.mlflow.end_run("FINISHED" if error_type is None else "KILLED")


def start_mlflow_run(log_dir: Path, run_name: str, settings: dict):
    """The MLflow run of this training (MLflow reads MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME)."""
    import mlflow

    run_id_file = log_dir / MLFLOW_RUN_ID_FILE
    if run_id_file.exists():
        mlflow.start_run(run_id=run_id_file.read_text().strip())
    else:
        run = mlflow.start_run(run_name=run_name)
        mlflow.log_params(settings)
        run_id_file.write_text(run.info.run_id)
    return mlflow
