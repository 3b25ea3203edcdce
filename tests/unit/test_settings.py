"""Experiments: `training` with each experiment's overrides, checked before any job."""

import pytest
import yaml

from fma_genre.settings import ExperimentConfigError, experiment_settings
from paths import PROJECT_ROOT

TRAINING_SCHEMA = yaml.safe_load((PROJECT_ROOT / "workflow/schemas/config.schema.yaml").read_text())[
    "properties"
]["training"]
TRAINING = {"mode": "finetune", "epochs": 20, "lr_head": 1e-3}


def test_no_experiments_is_one_named_default_with_training_as_it_is():
    assert experiment_settings({"training": TRAINING}, TRAINING_SCHEMA) == {"default": TRAINING}
    assert experiment_settings({"training": TRAINING, "experiments": {}}, TRAINING_SCHEMA) == {"default": TRAINING}


def test_each_experiment_is_training_with_its_overrides_in_config_order():
    experiments = {"probe": {"mode": "probe", "lr_head": 1e-2}, "finetune": {}}
    settings = experiment_settings({"training": TRAINING, "experiments": experiments}, TRAINING_SCHEMA)
    assert list(settings) == ["probe", "finetune"]
    assert settings["probe"] == {"mode": "probe", "epochs": 20, "lr_head": 1e-2}
    assert settings["finetune"] == TRAINING


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lr_hed": 1e-3}, "config experiments.bad: unknown key 'lr_hed'"),
        ({"seed": 3}, "config experiments.bad: unknown key 'seed'"),
        ({"mode": "prob"}, "config experiments.bad.mode: 'prob' is not one of ['finetune', 'probe', 'lora']"),
        ({"epochs": 0}, "config experiments.bad.epochs: 0 is less than the minimum of 1"),
    ],
)
def test_a_wrong_override_names_the_experiment_the_key_and_what_was_expected(overrides, message):
    config = {"training": TRAINING, "experiments": {"good": {}, "bad": overrides}}
    with pytest.raises(ExperimentConfigError) as error:
        experiment_settings(config, TRAINING_SCHEMA)
    assert str(error.value).startswith(message)
