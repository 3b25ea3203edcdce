"""The training set-ups of a run: config `experiments` (name -> overrides of `training` keys),
each trained once per seed of config `seeds`. Checked before any job, like the rest of the config."""

from __future__ import annotations

from collections.abc import Mapping

import jsonschema

DEFAULT_EXPERIMENT = "default"


class ExperimentConfigError(ValueError):
    """An experiment's overrides name an unknown `training` key or give it a wrong value."""


def experiment_overrides(config: Mapping) -> dict[str, dict]:
    """Config `experiments` (name -> overrides of `training` keys), or one `default` experiment
    without overrides when it has none."""
    return config.get("experiments") or {DEFAULT_EXPERIMENT: {}}


def experiment_settings(config: Mapping, training_schema: Mapping) -> dict[str, dict]:
    """{experiment name: its full training settings}, in config order (the first is the primary).

    `config` is validated already (its `training` has every default filled in); each
    experiment's settings are `training` with its overrides, checked against `training_schema`.
    No `experiments` (or an empty one): one experiment, `default`, with `training` as it is.
    """
    experiments = experiment_overrides(config)
    known = training_schema["properties"]
    validator = jsonschema.Draft202012Validator(training_schema)
    settings = {}
    for name, overrides in experiments.items():
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ExperimentConfigError(
                f"config experiments.{name}: unknown key {unknown[0]!r}; an experiment overrides "
                f"`training` keys: {', '.join(known)} (seeds come from `seeds`)"
            )
        merged = {**config["training"], **overrides}
        for error in validator.iter_errors(merged):
            key = ".".join(map(str, error.absolute_path))
            raise ExperimentConfigError(f"config experiments.{name}.{key}: {error.message}")
        settings[name] = merged
    return settings
