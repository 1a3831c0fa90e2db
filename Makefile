# The two commands of the README, and the pieces they are made of.
PYTHON ?= python3
WORKDIR ?= runs/quickstart

.PHONY: install quickstart lint typecheck test unit cluster-tools

install:  ## Install tarot with every extra into the current Python.
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[all]"

quickstart: install  ## The local quickstart: tiny model, bundled problems, CPU.
	tarot run examples/quickstart.yaml --workdir $(WORKDIR)

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

typecheck:
	$(PYTHON) -m mypy

unit: install lint typecheck
	$(PYTHON) -m pytest -m "not cluster"

cluster-tools:  ## Build the local Kubernetes control plane from Go modules into ~/.cache/tarot (once; cached).
	bash hack/build-cluster-tools.sh

test: install lint typecheck cluster-tools  ## Everything CI runs: lint, types, unit, integration and end-to-end tests.
	$(PYTHON) -m pytest
