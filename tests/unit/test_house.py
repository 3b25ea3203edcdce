"""The house: one subpackage per stage, each with its rule file, imports that only run downwards,
and modules and functions a reader takes in at once."""

import ast
import re

import pytest

from fma_genre.io.codedeps import imported_package_modules, module_name

from paths import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "src" / "fma_genre"
RULES = PROJECT_ROOT / "workflow" / "rules"
# Floors from the bottom: a subpackage imports only those before it (and itself).
FLOORS = ["io", "data", "features", "models", "runtime", "scoring", "evaluation", "training"]
ALLOWED = {name: set(FLOORS[: i + 1]) for i, name in enumerate(FLOORS)} | {"demo": {"io", "demo"}}
# Shared by the stages, so without a rule file of their own.
SHARED = {"io", "runtime"}
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60

MODULES = sorted(PACKAGE.rglob("*.py"))


def subpackage(name: str) -> str:
    return name.split(".")[1]


def test_the_subpackages_are_the_floors():
    found = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert found == set(ALLOWED)
    assert [path.name for path in PACKAGE.glob("*.py")] == ["__init__.py"]  # nothing left flat


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_imports_only_run_downwards(path):
    name = module_name(path)
    if name == "fma_genre":
        return
    above = {subpackage(imported) for imported in imported_package_modules(path)} - ALLOWED[subpackage(name)]
    assert not above, f"{name} imports from {above}, above its floor"


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_modules_and_functions_stay_short(path):
    text = path.read_text()
    assert text.count("\n") <= MAX_MODULE_LINES, f"{path.name}: {text.count(chr(10))} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path.name}: {node.name} has {length} lines"


def rule_scripts(rule_file) -> dict[str, str]:
    """{rule: its script's name} of a rule file."""
    blocks = re.split(r"^(?:rule|checkpoint) (\w+):", rule_file.read_text(), flags=re.M)[1:]
    return {
        rule: re.search(r'"\.\./\.\./scripts/(\w+)\.py"', block)[1]
        for rule, block in zip(blocks[::2], blocks[1::2])
    }


def test_each_stage_has_one_rule_file_and_its_rules_run_that_subpackage():
    stage_files = {path.stem for path in RULES.glob("*.smk")} - {"common"}
    assert stage_files == set(ALLOWED) - SHARED
    for stage in stage_files:
        for rule, script in rule_scripts(RULES / f"{stage}.smk").items():
            imported = imported_package_modules(PROJECT_ROOT / "scripts" / f"{script}.py")
            assert stage in {subpackage(name) for name in imported}, (
                f"rule {rule} ({stage}.smk) runs {imported}"
            )
    included = re.findall(
        r'^include: "workflow/rules/(\w+)\.smk"', (PROJECT_ROOT / "Snakefile").read_text(), re.M
    )
    assert set(included) == stage_files | {"common"}
