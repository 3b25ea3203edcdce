"""The training settings of a run, and the training set-ups ("experiments") of the config.

Config `training` is one set-up; config `experiments` names several (name -> overrides of
`training` keys), each trained once per seed of config `seeds`. Every key's type, default and
description live in one place, workflow/schemas/config.schema.yaml: `TrainingSettings` has a
field per key of its `training` section plus the seed, and no defaults of its own; it is built
from the validated config (defaults filled in), and checked before any job like the rest of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import jsonschema

DEFAULT_EXPERIMENT = "default"
# Settings that change when a training stops or how fast it runs, or (the micro-batch size, which
# follows the process count by default) only the random masks of the steps still to come: a state
# saved under other values of these resumes, on any number of processes.
RESUMABLE_CHANGES = frozenset(
    {"patience", "gradient_checkpointing", "compile", "checkpoint_minutes", "micro_batch_size"}
)
LORA_ONLY = frozenset({"lora_rank", "lora_alpha"})


class ExperimentConfigError(ValueError):
    """An experiment's overrides name an unknown `training` key or give it a wrong value."""


@dataclass(frozen=True)
class TrainingSettings:
    """One training run: config `training` (with its experiment's overrides) and its seed."""

    mode: str
    epochs: int
    batch_size: int
    eval_batch_size: int
    crop_seconds: float
    lr_backbone: float
    lr_head: float
    weight_decay: float
    warmup_fraction: float
    grad_clip: float
    max_pos_weight: float
    lora_rank: int
    lora_alpha: float
    patience: int
    selection_metric: str
    micro_batch_size: int | None
    gradient_checkpointing: bool
    compile: bool
    checkpoint_minutes: float
    seed: int

    @classmethod
    def from_config(cls, training: Mapping, seed: int) -> TrainingSettings:
        """The settings of validated config `training` values (every key, defaults filled in)."""
        names = {field.name for field in dataclasses.fields(cls)} - {"seed"}
        missing, unknown = sorted(names - set(training)), sorted(set(training) - names)
        if missing or unknown:
            raise ExperimentConfigError(
                f"training settings: missing {missing or 'none'}, unknown {unknown or 'none'}: "
                "TrainingSettings has one field per `training` key of workflow/schemas/config.schema.yaml"
            )
        return cls(**training, seed=seed)

    @classmethod
    def from_schema_defaults(cls, training_schema: Mapping, seed: int = 0, **overrides) -> TrainingSettings:
        """The defaults of `training_schema` (the config schema's `training` section) with
        `overrides`, checked against it as the workflow checks the config: for code that trains
        outside the workflow (tests, benchmarks)."""
        values = {name: spec["default"] for name, spec in training_schema["properties"].items()} | overrides
        for error in jsonschema.Draft202012Validator(training_schema).iter_errors(values):
            raise ExperimentConfigError(
                f"training.{'.'.join(map(str, error.absolute_path))}: {error.message}"
            )
        return cls.from_config(values, seed)

    def for_processes(self, world_size: int) -> TrainingSettings:
        """These settings with the micro-batch size resolved for `world_size` processes (default:
        batch_size / processes, rounded up: 3 processes deal a batch of 16 as 6 + 6 + 4)."""
        micro_batch_size = self.micro_batch_size or -(-self.batch_size // world_size)
        if not 1 <= micro_batch_size <= self.batch_size:
            raise ValueError(
                f"training.micro_batch_size must be at most batch_size ({self.batch_size}), "
                f"got {micro_batch_size}"
            )
        return dataclasses.replace(self, micro_batch_size=micro_batch_size)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def recorded(self) -> dict:
        """What the run's summary, model card and MLflow record: every setting that applies (the
        LoRA ones in mode lora only)."""
        return {
            name: value
            for name, value in self.as_dict().items()
            if self.mode == "lora" or name not in LORA_ONLY
        }

    def result_key(self) -> dict:
        """The settings that change the trained model: what a resumable state must match.
        `epochs` counts, since the cosine schedule spans all epochs."""
        return {name: value for name, value in self.recorded().items() if name not in RESUMABLE_CHANGES}


def experiment_overrides(config: Mapping) -> dict[str, dict]:
    """Config `experiments` (name -> overrides of `training` keys), or one `default` experiment
    without overrides when it has none."""
    return config.get("experiments") or {DEFAULT_EXPERIMENT: {}}


def experiment_settings(config: Mapping, training_schema: Mapping) -> dict[str, dict]:
    """{experiment name: its full `training` values}, in config order (the first is the primary).

    `config` is validated already (its `training` has every default filled in); each
    experiment's values are `training` with its overrides, checked against `training_schema`.
    No `experiments` (or an empty one): one experiment, `default`, with `training` as it is.
    """
    validator = jsonschema.Draft202012Validator(training_schema)
    settings = {}
    for name, overrides in experiment_overrides(config).items():
        merged = {**config["training"], **overrides}
        for error in validator.iter_errors(merged):
            key = ".".join(map(str, ["experiments", name, *error.absolute_path]))
            raise ExperimentConfigError(f"config {key}: {error.message}")
        if "batch_size" in merged and (merged.get("micro_batch_size") or 0) > merged["batch_size"]:
            where = f"experiments.{name}" if config.get("experiments") else "training"
            raise ExperimentConfigError(
                f"config {where}.micro_batch_size: {merged['micro_batch_size']} is more than its "
                f"batch_size ({merged['batch_size']}); a micro-batch is a part of the batch"
            )
        settings[name] = merged
    return settings
