"""Shared fixtures: the real FMA sample files, read from ../shared/fma-samples (never copied)."""

from pathlib import Path

import pytest

from paths import REAL_CLIP, REAL_GENRES_CSV

# The long end-to-end runs first: under `make test` (two workers, a module each at a time) the
# SLURM run and the demo DAG start together, and the unit tests fill in behind them.
FIRST = {"slurm": 0, "workflow": 1}


def pytest_collection_modifyitems(items):
    def rank(item):
        return min(
            (FIRST[mark.name] for mark in item.iter_markers() if mark.name in FIRST), default=len(FIRST)
        )

    items.sort(key=rank)


def _shared(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"shared real FMA file missing: {path} (see ../shared/fma-samples/README.md)")
    return path


@pytest.fixture(scope="session")
def real_clip() -> Path:
    return _shared(REAL_CLIP)


@pytest.fixture(scope="session")
def real_genres_csv() -> Path:
    return _shared(REAL_GENRES_CSV)


@pytest.fixture(scope="module")
def torch_one_thread():
    """Run torch on one thread for the module, then restore the previous setting."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
