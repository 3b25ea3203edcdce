"""TensorBoard event files of a training run: per step its loss and learning rates, per epoch its
validation metrics and throughput, so that `tensorboard --logdir results/experiments` compares
every experiment and seed."""

from __future__ import annotations

import shutil
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter


class RunLog:
    """Scalars by optimiser step. A resumed run drops what was logged after its checkpoint."""

    def __init__(self, log_dir: str | Path, steps_done: int):
        if steps_done == 0:  # a fresh start: the events of an earlier (stale) run go
            shutil.rmtree(log_dir, ignore_errors=True)
        self.writer = SummaryWriter(str(log_dir), purge_step=steps_done + 1 if steps_done else None)

    def step(self, step: int, loss: float, learning_rates: dict[str, float], clips_per_second: float) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/clips_per_second", clips_per_second, step)
        for part, rate in learning_rates.items():
            self.writer.add_scalar(f"learning_rate/{part}", rate, step)

    def epoch(self, row: dict) -> None:
        """The training log's row of an epoch, at the epoch's last step."""
        for name, value in row.items():
            if name not in ("epoch", "step"):
                self.writer.add_scalar(f"epoch/{name}", value, row["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
