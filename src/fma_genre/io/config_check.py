"""The workflow's config, checked before any job: one line naming the key, what was expected
and what was found (not jsonschema's dump of the whole schema), and the values the schema
cannot judge (the model id, the folders the run writes to)."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path

import jsonschema
from huggingface_hub.utils import HFValidationError, validate_repo_id

# The folders a run writes, relative to its working directory.
WRITTEN_FOLDERS = ("data", "results", "logs", "benchmarks")


class ConfigError(ValueError):
    """A config value that cannot run; its message names the key."""


def check_config(config: Mapping, schema: Mapping, workdir: str | os.PathLike = ".") -> None:
    """Raise `ConfigError` for the first wrong value of `config` (before defaults are filled in)."""
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if errors:
        raise ConfigError(describe(jsonschema.exceptions.best_match(errors)))
    check_experiment_keys(config, schema["properties"]["training"]["properties"])
    if not config.get("tiny_model") and "model" in config:
        check_model_id(config["model"])
    check_written_folders(Path(workdir))


def describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(map(str, error.absolute_path))
    where = f"config {key}" if key else "config"
    if error.validator == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        return unknown_key(where, sorted(set(error.instance) - set(known))[0], known)
    return f"{where}: {error.message}"


def unknown_key(where: str, key: str, known: list[str]) -> str:
    """ "<where>: unknown key 'x'", with the nearest known key, or all of them when none is near."""
    nearest = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{nearest[0]}'?)" if nearest else f"; the keys: {', '.join(known)}"
    return f"{where}: unknown key '{key}'{hint}"


def check_experiment_keys(config: Mapping, training_keys: Mapping) -> None:
    """An experiment's overrides are `training` keys (their values are checked with the
    experiments' settings, `training.settings.experiment_settings`)."""
    for name, overrides in (config.get("experiments") or {}).items():
        for key in overrides:
            if key not in training_keys:
                raise ConfigError(
                    unknown_key(f"config experiments.{name}", key, list(training_keys))
                    + "; an experiment overrides `training` keys (seeds come from `seeds`)"
                )


def check_model_id(model: str) -> None:
    """`model` must be a Hugging Face hub id: rule model_weights downloads one of its commits."""
    try:
        validate_repo_id(model)
    except HFValidationError:
        folder = " (a folder: `model` names a hub model to download)" if os.path.isdir(model) else ""
        raise ConfigError(
            f"config model: {model!r} is not a Hugging Face hub id{folder}: expected namespace/name "
            "(letters, digits, '-', '_', '.'), like 'facebook/w2v-bert-2.0'"
        ) from None


def check_written_folders(workdir: Path) -> None:
    """The working directory and the folders the run writes there can be written."""
    for path in (workdir, *(workdir / name for name in WRITTEN_FOLDERS)):
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{path.resolve()}: the run writes a folder there, and it is a file")
        if path.exists() and not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{path.resolve()}: the run writes there, and the folder is not writable")
