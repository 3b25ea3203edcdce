"""The import closures that become each rule's code inputs and training's code key."""

import shutil

import pytest

from fma_genre.codedeps import import_closure, imported_package_modules, module_closure_digest
from paths import PROJECT_ROOT

SCRIPTS = PROJECT_ROOT / "scripts"
PACKAGE = PROJECT_ROOT / "src" / "fma_genre"


def closure_names(script: str) -> set[str]:
    return {path.stem for path in import_closure(SCRIPTS / f"{script}.py")}


def test_every_import_form_counts_and_logging_does_not(tmp_path):
    source = tmp_path / "script.py"
    source.write_text(
        "import fma_genre.metrics\n"
        "from fma_genre import labels, logs\n"
        "from fma_genre.scores import read_scores_csv\n"
        "import numpy, fma_genre\n"
        "from fma_genre import not_a_module\n"
        "def later():\n"
        "    from fma_genre.plots import draw_figures\n"
    )
    assert imported_package_modules(source) == {
        "fma_genre.metrics", "fma_genre.labels", "fma_genre.scores", "fma_genre.plots"
    }


def test_closures_follow_imports_through_modules():
    # train runs the selection metrics and the labels (the modules it once failed to list).
    assert {"train", "metrics", "labels", "loader", "model", "checkpoint", "inference"} <= closure_names("train")
    assert {"probe", "lora", "run_log"} <= closure_names("train")  # the training modes, TensorBoard
    assert {"comparison", "experiments", "evaluate"} <= closure_names("compare_experiments")
    assert {"metrics", "plots", "scores"} <= closure_names("plots") and "evaluate" not in closure_names("plots")
    assert "plots" not in closure_names("evaluate") and "baseline" not in closure_names("evaluate")
    assert closure_names("download") == {"download", "digests"}


@pytest.mark.parametrize("script", ["evaluate", "compare_experiments"])
def test_evaluation_never_loads_the_model(script):
    """No module evaluation runs imports torch or the model code: metrics come from score tables."""
    modules = import_closure(SCRIPTS / f"{script}.py")
    assert not {"model", "inference", "loader", "train"} & {path.stem for path in modules}
    for path in modules:
        assert "import torch" not in path.read_text(), path


def test_the_code_digest_changes_with_any_module_of_the_closure_only(tmp_path):
    package = tmp_path / "fma_genre"
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = module_closure_digest("fma_genre.train", package)
    (package / "demo.py").write_text((package / "demo.py").read_text() + "\n# not training code\n")
    assert module_closure_digest("fma_genre.train", package) == before
    (package / "metrics.py").write_text((package / "metrics.py").read_text() + "\n# selection code\n")
    assert module_closure_digest("fma_genre.train", package) != before
