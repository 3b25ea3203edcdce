"""Project files that must agree: pins in pyproject and envs/, config keys in schema and README."""

import re
import subprocess
import sys
import tomllib

import yaml

from paths import PROJECT_ROOT

SCHEMA = PROJECT_ROOT / "workflow" / "schemas" / "config.schema.yaml"


def test_conda_env_pins_equal_pyproject_pins():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((PROJECT_ROOT / "envs" / "pipeline.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert all("==" in p for p in project["dependencies"]), "pyproject pins must be exact"
    assert sorted(pip) == sorted(project["dependencies"])
    assert f"python={project['requires-python'].lstrip('>=')}" in env["dependencies"]


def _schema_keys(properties, prefix=""):
    for key, spec in properties.items():
        yield prefix + key, spec
        if spec.get("type") == "object" and "properties" in spec:
            yield from _schema_keys(spec["properties"], f"{prefix}{key}.")


def test_every_schema_key_has_type_default_description_and_a_config_readme_row():
    schema = yaml.safe_load(SCHEMA.read_text())
    readme = (PROJECT_ROOT / "config" / "README.md").read_text()
    documented = {
        key: [kind, "null"] if nullable else kind
        for key, kind, nullable in re.findall(
            r"^\| `([\w.]+)` \| (string|integer|number|boolean|array|object)( or null)? \|",
            readme,
            flags=re.M,
        )
    }
    keys = dict(_schema_keys(schema["properties"]))
    for key, spec in keys.items():
        assert {"type", "default", "description"} <= spec.keys(), key
    leaves = {k: s["type"] for k, s in keys.items() if "properties" not in s}
    assert documented == leaves, "config/README.md's table and the schema differ"


def test_config_files_are_valid_against_the_schema():
    from snakemake.utils import validate

    for name in ("config.yaml", "demo.yaml"):
        config = yaml.safe_load((PROJECT_ROOT / "config" / name).read_text())
        validate(config, str(SCHEMA))


def test_evaluation_comparison_and_plot_jobs_do_not_import_torch_or_transformers():
    # Importing transformers costs a job ~5 s of CPU; the demo runs nine such jobs.
    code = (
        "import sys, fma_genre.evaluation.evaluate, fma_genre.evaluation.comparison, fma_genre.evaluation.plots; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
