"""The unit tests' tiny training data set, one per test module that asks for it."""

from pathlib import Path

import pytest

from fma_genre.models.pretrained import write_tiny_model

from unit.test_train import write_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Feature files, manifest and vocabulary (`test_train.write_dataset`), and the tiny model."""
    root = tmp_path_factory.mktemp("dataset")
    manifest, vocabulary = write_dataset(root)
    write_tiny_model(root / "tiny", seed=0)
    return manifest, vocabulary, root / "tiny"
