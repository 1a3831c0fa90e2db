# The two commands of the README, and the pieces they are made of.
PYTHON ?= python3
WORKDIR ?= runs/quickstart

.PHONY: install system-packages quickstart lint typecheck test unit cluster-tools chart-tools prometheus-tools kueue-tools

install:  ## Install tarot with every extra into the current Python.
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[all]"

quickstart: install  ## The local quickstart: tiny model, bundled problems, CPU.
	tarot run examples/quickstart.yaml --workdir $(WORKDIR)

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) hack/check_layers.py

typecheck:
	$(PYTHON) -m mypy

# The tests run as CI runs them: a missing jail namespace or missing reference data fails, never skips,
# and a test cluster that cannot start its real node fails to start (hack/cluster says why).
test unit: export TAROT_EXPECT_ISOLATION = full
test unit: export TAROT_REQUIRE_REFERENCE_DATA = 1
test: export TAROT_REAL_NODE = 1

unit: install lint typecheck
	$(PYTHON) -m pytest -m "not cluster"

system-packages:  ## Debian packages the image, chart and monitoring tests use (buildah, podman, mmdebstrap, prometheus).
	bash hack/install-system-packages.sh

cluster-tools:  ## Build the local Kubernetes control plane from Go modules into ~/.cache/tarot (once; cached).
	bash hack/build-cluster-tools.sh

chart-tools:  ## Build kubeconform and the monitoring CRDs' schemas for the chart checks (once; cached).
	bash hack/build-chart-tools.sh

prometheus-tools:  ## Build Prometheus with Kubernetes service discovery (Debian's has none) for the cluster tests (once; cached).
	bash hack/build-prometheus.sh

kueue-tools:  ## Build Kueue's controller manager and fetch its CRDs from its Go module for the Kueue cluster test (once; cached).
	bash hack/build-kueue.sh

.PHONY: images images-trainer
images:  ## Build the operator, sandbox and CPU trainer images with buildah (no Docker engine; base and wheels cached).
	bash hack/images.sh all

images-trainer:  ## Build the trainer image (CUDA torch; large; VLLM_VERSION=x.y.z adds vLLM).
	bash hack/images.sh build trainer

test: system-packages install lint typecheck cluster-tools chart-tools prometheus-tools kueue-tools  ## Everything CI runs: lint, types, unit, integration and end-to-end tests.
	$(PYTHON) -m pytest
