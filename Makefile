# The two commands of the README: `make demo` and `make test`. Both create the virtual
# environment first when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SNAKEMAKE := $(BIN)/snakemake --snakefile $(CURDIR)/Snakefile
CORES ?= 2
# Test processes (pytest-xdist), each running whole test modules: the SLURM run and the demo DAG
# start at once, beside each other, then the unit tests (much of the SLURM run is waiting).
TEST_WORKERS ?= 2

.PHONY: demo test lint format clean-demo

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## demo: the whole pipeline on the built-in synthetic dataset, offline, on CPU; outputs in demo/
demo: $(VENV)/.installed
	mkdir -p demo
	$(SNAKEMAKE) --directory demo --configfile $(CURDIR)/config/demo.yaml \
		--workflow-profile $(CURDIR)/workflow/profiles/demo --cores $(CORES) results/metrics.json
	@echo "Demo metrics: demo/results/metrics.json"

## test: the unit and workflow tests
test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

## lint: snakefmt and snakemake --lint on the workflow, ruff (format and check) on the Python
lint: $(VENV)/.installed
	$(BIN)/snakefmt --check Snakefile workflow/
	$(SNAKEMAKE) --lint --configfile config/demo.yaml
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

## format: what `make lint` checks, applied
format: $(VENV)/.installed
	$(BIN)/snakefmt Snakefile workflow/
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-demo:
	rm -rf demo
