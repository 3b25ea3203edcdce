"""The import closures that become each rule's code inputs and training's code key."""

import shutil

import pytest

from fma_genre.io.codedeps import (
    UnknownModule,
    import_closure,
    imported_package_modules,
    module_closure_digest,
)

from paths import PROJECT_ROOT

SCRIPTS = PROJECT_ROOT / "scripts"
PACKAGE = PROJECT_ROOT / "src" / "fma_genre"


def closure_names(script: str) -> set[str]:
    """The closure of scripts/<script>.py as paths below the package, e.g. "training/loop"."""
    return {
        str(path.relative_to(PACKAGE).with_suffix("")) for path in import_closure(SCRIPTS / f"{script}.py")
    }


def test_every_import_form_counts_and_logging_does_not(tmp_path):
    source = tmp_path / "script.py"
    source.write_text(
        "import fma_genre.evaluation.metrics\n"
        "from fma_genre.data import labels, vocabulary\n"  # modules of a subpackage
        "from fma_genre.io import logs\n"  # routes logs only: no result depends on it
        "from fma_genre.scoring.tables import read_scores_csv\n"
        "import numpy, fma_genre\n"
        "from fma_genre.data import read_anything\n"  # a name of data/__init__.py, which holds no code
        "def later():\n"
        "    from fma_genre.evaluation.plots import draw_figures\n"
    )
    assert imported_package_modules(source) == {
        "fma_genre.evaluation.metrics",
        "fma_genre.data.labels",
        "fma_genre.data.vocabulary",
        "fma_genre.scoring.tables",
        "fma_genre.evaluation.plots",
    }


def write_package(root, files: dict[str, str]):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "fma_genre"


def test_packages_count_by_their_init_code_and_relative_imports_resolve(tmp_path):
    package = write_package(
        tmp_path,
        {
            "fma_genre/__init__.py": '"""Only a docstring: importing the package runs nothing."""\n',
            "fma_genre/stage/__init__.py": "from fma_genre.stage.helpers import VALUE\n",
            "fma_genre/stage/helpers.py": "from . import deep\nfrom .deep import x as VALUE\n",
            "fma_genre/stage/deep.py": "from ..shared import tools\nx = 1\n",
            "fma_genre/shared/__init__.py": "",
            "fma_genre/shared/tools.py": "y = 2\n",
            "fma_genre/unused.py": "z = 3\n",
            "script.py": "from fma_genre import stage\n",
        },
    )
    closure = import_closure(tmp_path / "script.py", package_dir=package)
    assert [str(path.relative_to(package)) for path in closure] == [
        "shared/tools.py",
        "stage/__init__.py",
        "stage/deep.py",
        "stage/helpers.py",
    ]


def test_a_relative_import_beyond_the_package_stops_and_a_namespace_folder_runs_nothing(tmp_path):
    package = write_package(tmp_path, {
        "fma_genre/__init__.py": "",
        "fma_genre/stage/deep.py": "from ... import x\n",  # stage/ has no __init__.py
        "fma_genre/stage/fine.py": "y = 1\n",
        "script.py": "import fma_genre.stage.fine\n",
    })  # fmt: skip
    assert imported_package_modules(tmp_path / "script.py", package) == {"fma_genre.stage.fine"}
    with pytest.raises(UnknownModule, match="level 3"):
        imported_package_modules(package / "stage/deep.py", package)


@pytest.mark.parametrize(
    "line",
    [
        "import fma_genre.stage.missing\n",
        "from fma_genre.missing import x\n",
        "from fma_genre.stage import missing\n",
    ],
)
def test_an_import_of_a_module_that_does_not_exist_stops_naming_it(tmp_path, line):
    package = write_package(
        tmp_path,
        {
            "fma_genre/__init__.py": "",
            "fma_genre/stage/__init__.py": "",
            "fma_genre/stage/real.py": "",
            "script.py": "from fma_genre.stage import real\n" + line,
        },
    )
    if line.startswith("from fma_genre.stage import"):
        # `missing` may be a name that stage/__init__.py defines: not an error, and no code runs.
        assert imported_package_modules(tmp_path / "script.py", package) == {"fma_genre.stage.real"}
        return
    with pytest.raises(UnknownModule, match=r"script\.py imports fma_genre\.(stage\.)?missing"):
        imported_package_modules(tmp_path / "script.py", package)


def test_closures_follow_imports_through_modules():
    # train runs the selection metrics and the labels (the modules it once failed to list).
    train = closure_names("train")
    assert {
        "training/loop",
        "evaluation/metrics",
        "data/vocabulary",
        "features/loader",
        "models/classifier",
        "training/resume",
        "scoring/windows",
        "runtime/processes",
    } <= train
    assert {"training/probe", "models/lora", "training/run_log", "training/settings"} <= train
    assert {"evaluation/comparison", "evaluation/bootstrap", "evaluation/evaluate"} <= closure_names(
        "compare_experiments"
    )
    plots = closure_names("plots")
    assert {
        "evaluation/metrics",
        "evaluation/plots",
        "scoring/tables",
    } <= plots and "evaluation/evaluate" not in plots
    assert not {"evaluation/plots", "evaluation/baseline"} & closure_names("evaluate")
    assert closure_names("download") == {"data/download", "io/digests"}


@pytest.mark.parametrize("script", ["evaluate", "compare_experiments"])
def test_evaluation_never_loads_the_model(script):
    """No module evaluation runs imports torch or the model code: metrics come from score tables."""
    modules = import_closure(SCRIPTS / f"{script}.py")
    assert not {"classifier", "windows", "loader", "loop"} & {path.stem for path in modules}
    for path in modules:
        assert "import torch" not in path.read_text(), path


def test_the_code_digest_changes_with_any_module_of_the_closure_only(tmp_path):
    package = tmp_path / "fma_genre"
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = module_closure_digest("fma_genre.training.loop", package)
    (package / "demo/archives.py").write_text(
        (package / "demo/archives.py").read_text() + "\n# not training code\n"
    )
    assert module_closure_digest("fma_genre.training.loop", package) == before
    metrics = package / "evaluation/metrics.py"
    metrics.write_text(metrics.read_text() + "\n# selection code\n")
    assert module_closure_digest("fma_genre.training.loop", package) != before
