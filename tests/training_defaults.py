"""Training settings for tests that train outside the workflow: the config schema's defaults
(its one spelling of them) with a test's overrides."""

import yaml

from fma_genre.training.settings import TrainingSettings

from paths import CONFIG_SCHEMA

TRAINING_SCHEMA = yaml.safe_load(CONFIG_SCHEMA.read_text())["properties"]["training"]


def training_settings(seed: int = 0, **overrides) -> TrainingSettings:
    return TrainingSettings.from_schema_defaults(TRAINING_SCHEMA, seed, **overrides)
