"""Training settings: one field per schema key, the resume key; experiments: `training` with
each experiment's overrides, checked before any job."""

import dataclasses

import pytest

from fma_genre.training.settings import ExperimentConfigError, TrainingSettings, experiment_settings

from training_defaults import TRAINING_SCHEMA, training_settings

TRAINING = {"mode": "finetune", "epochs": 20, "lr_head": 1e-3}


def test_no_experiments_is_one_named_default_with_training_as_it_is():
    assert experiment_settings({"training": TRAINING}, TRAINING_SCHEMA) == {"default": TRAINING}
    assert experiment_settings({"training": TRAINING, "experiments": {}}, TRAINING_SCHEMA) == {
        "default": TRAINING
    }


def test_each_experiment_is_training_with_its_overrides_in_config_order():
    experiments = {"probe": {"mode": "probe", "lr_head": 1e-2}, "finetune": {}}
    settings = experiment_settings({"training": TRAINING, "experiments": experiments}, TRAINING_SCHEMA)
    assert list(settings) == ["probe", "finetune"]
    assert settings["probe"] == {"mode": "probe", "epochs": 20, "lr_head": 1e-2}
    assert settings["finetune"] == TRAINING


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lr_hed": 1e-3}, "config experiments.bad: Additional properties are not allowed ('lr_hed'"),
        ({"seed": 3}, "config experiments.bad: Additional properties are not allowed ('seed'"),
        ({"mode": "prob"}, "config experiments.bad.mode: 'prob' is not one of ['finetune', 'probe', 'lora']"),
        ({"epochs": 0}, "config experiments.bad.epochs: 0 is less than the minimum of 1"),
    ],
)
def test_a_wrong_override_names_the_experiment_the_key_and_what_was_expected(overrides, message):
    config = {"training": TRAINING, "experiments": {"good": {}, "bad": overrides}}
    with pytest.raises(ExperimentConfigError) as error:
        experiment_settings(config, TRAINING_SCHEMA)
    assert str(error.value).startswith(message)


def test_training_settings_have_one_field_per_schema_key_and_the_seed():
    fields = {field.name for field in dataclasses.fields(TrainingSettings)}
    assert fields == set(TRAINING_SCHEMA["properties"]) | {"seed"}
    settings = training_settings(seed=3, epochs=7)
    assert settings.epochs == 7 and settings.seed == 3
    # every other value is the schema's default, its one spelling
    assert {k: v for k, v in settings.as_dict().items() if k not in ("epochs", "seed")} == {
        k: spec["default"] for k, spec in TRAINING_SCHEMA["properties"].items() if k != "epochs"
    }
    with pytest.raises(ExperimentConfigError, match=r"missing \['mode'\], unknown \['lr_hed'\]"):
        TrainingSettings.from_config(
            {k: v for k, v in settings.as_dict().items() if k not in ("seed", "mode")} | {"lr_hed": 1}, 0
        )


def test_the_resume_key_holds_what_changes_the_result_only():
    settings = training_settings(micro_batch_size=None, batch_size=16).for_processes(2)
    assert settings.micro_batch_size == 8  # resolved: it draws the random masks
    key = settings.result_key()
    assert {"epochs", "seed", "lr_head", "mode"} <= set(key)
    # The micro-batch follows the process count: a state resumes on any number of processes.
    assert not {
        "patience",
        "checkpoint_minutes",
        "gradient_checkpointing",
        "compile",
        "lora_rank",
        "micro_batch_size",
    } & set(key)
    assert "lora_rank" in dataclasses.replace(settings, mode="lora").result_key()


@pytest.mark.parametrize(
    ("processes", "micro_batch_size"), [(1, 16), (2, 8), (3, 6), (5, 4), (6, 3), (8, 2), (16, 1), (32, 1)]
)
def test_any_process_count_gets_a_default_micro_batch(processes, micro_batch_size):
    assert training_settings(batch_size=16).for_processes(processes).micro_batch_size == micro_batch_size


def test_a_micro_batch_larger_than_the_batch_is_refused():
    with pytest.raises(ValueError, match=r"micro_batch_size must be at most batch_size \(16\), got 17"):
        training_settings(batch_size=16, micro_batch_size=17).for_processes(1)


def test_settings_built_outside_the_workflow_are_checked_like_the_config():
    with pytest.raises(ExperimentConfigError, match=r"training.mode: 'Probe' is not one of"):
        training_settings(mode="Probe")
    with pytest.raises(ExperimentConfigError, match=r"training.epochs: 0 is less than the minimum of 1"):
        training_settings(epochs=0)
    assert (
        "lora_rank" not in training_settings().recorded()
        and "lora_rank" in training_settings(mode="lora").recorded()
    )


def test_a_micro_batch_larger_than_the_batch_is_named_before_any_job():
    experiments = {"small": {"batch_size": 4, "micro_batch_size": 8}}
    with pytest.raises(
        ExperimentConfigError,
        match=r"experiments.small.micro_batch_size: 8 is more than its batch_size \(4\)",
    ):
        experiment_settings({"training": TRAINING, "experiments": experiments}, TRAINING_SCHEMA)
