"""Config validation and the helpers the rules share (paths, shards, package modules)."""

import os
import re
import sys
from pathlib import Path

import yaml
from snakemake.utils import min_version, validate

min_version("9.0")


PROJECT_ROOT = Path(workflow.basedir)
CONFIG_SCHEMA = PROJECT_ROOT / "workflow/schemas/config.schema.yaml"

# Rule scripts import the package from this checkout whatever environment runs them
# (the project's venv, a conda env from envs/, a SLURM job).
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        filter(None, [str(PROJECT_ROOT / "src"), os.environ.get("PYTHONPATH")])
    )
)
sys.path.insert(0, str(PROJECT_ROOT / "src"))

from fma_genre.io.config_check import ConfigError, check_config

# One line naming the wrong key, before any job (and before Snakemake's own check, whose message
# holds the whole schema; it fills in the defaults).
SCHEMA = yaml.safe_load(CONFIG_SCHEMA.read_text())
try:
    check_config(config, SCHEMA)
except ConfigError as error:
    sys.exit(str(error))
validate(config, schema=str(CONFIG_SCHEMA), set_default=True)

SUBSET = config["subset"]
ARCHIVES = ["fma_metadata", f"fma_{SUBSET}"]
FEATURES_DIR = f"data/processed/fma_features/fma_{SUBSET}"
PIPELINE_ENV = "../../envs/pipeline.yaml"

from fma_genre.training.settings import (
    ExperimentConfigError,
    TrainingSettings,
    experiment_overrides,
    experiment_settings,
)

# Each experiment's full training settings, its overrides checked before any job.
try:
    EXPERIMENTS = experiment_settings(config, SCHEMA["properties"]["training"])
except ExperimentConfigError as error:
    sys.exit(str(error))
SEEDS = config["seeds"]
# results/model and metrics.json's `model`: the first experiment's first seed.
PRIMARY_RUN = dict(experiment=next(iter(EXPERIMENTS)), seed=SEEDS[0])
RUN_DIR = "results/experiments/{experiment}/seed{seed}"


wildcard_constraints:
    subset="small|medium|large",
    archive="fma_(metadata|small|medium|large)",
    shard=r"\d{3}",
    split="validation|test",
    experiment="|".join(map(re.escape, EXPERIMENTS)),
    seed=r"\d+",


def script_code(script):
    """The package modules that scripts/<script>.py runs (its import closure), as code inputs:
    editing any of them reruns the rule, editing any other module does not."""
    from fma_genre.io.codedeps import import_closure

    return [
        str(path)
        for path in import_closure(
            PROJECT_ROOT / "scripts" / f"{script}.py",
            package_dir=PROJECT_ROOT / "src" / "fma_genre",
        )
    ]


def run_file(name):
    """A file of one experiment and seed, e.g. run_file("model")."""
    return f"{RUN_DIR}/{name}"


def every_run(name):
    """That file of every experiment and seed."""
    return expand(run_file(name), experiment=EXPERIMENTS, seed=SEEDS)


def primary_run(name):
    return run_file(name).format(**PRIMARY_RUN)


def run_training_settings(wildcards):
    """The training settings of one experiment and seed, as a plain dict (the rule's params:
    changing one experiment's overrides reruns that experiment's seeds only)."""
    settings = TrainingSettings.from_config(
        EXPERIMENTS[wildcards.experiment], seed=int(wildcards.seed)
    )
    return settings.as_dict()


def is_local_source():
    return "://" not in config["source"]


def download_source_inputs(wildcards):
    """The local archive (a mirror folder or the demo's) and the SHA1 list a download needs."""
    inputs = {}
    if is_local_source():
        inputs["archive"] = os.path.join(config["source"], f"{wildcards.archive}.zip")
    if config["checksums_file"]:
        inputs["checksums"] = config["checksums_file"]
    return inputs


def feature_shards(wildcards):
    """The FMA folders (NNN) that hold the subset's tracks, known once the subset table exists."""
    from fma_genre.io.layout import shard_of
    from fma_genre.data.metadata import read_subset_track_ids

    subset_csv = checkpoints.subset_table.get(subset=SUBSET).output.table
    return sorted({shard_of(t) for t in read_subset_track_ids(subset_csv)})


def feature_status_tables(wildcards):
    return expand(
        f"{FEATURES_DIR}/{{shard}}.status.csv", shard=feature_shards(wildcards)
    )


def model_display_name():
    return "tiny random Wav2Vec2-BERT" if config["tiny_model"] else config["model"]


def model_weights_dir():
    """Where the pretrained weights live, so that compute nodes need no internet."""
    if config["tiny_model"]:
        return "data/models/tiny-random-w2v-bert"
    return "data/models/" + "--".join(
        Path(config["model"]).parts
    )  # hub ids hold a slash


def probe_cache_input(wildcards):
    """A probe experiment's cache (none for the other modes): shared by its seeds and by every
    probe experiment of the same crop length."""
    settings = EXPERIMENTS[wildcards.experiment]
    if settings["mode"] != "probe":
        return {}
    return {"probe_cache": f"results/probe_cache/crop{settings['crop_seconds']:g}s"}
