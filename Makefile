# The verbs researchers use. Every target installs what it needs first (into .venv).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,slurm
PY := $(VENV)/bin/python
STUDY ?= quickstart
LAUNCHER ?= basic
ARGS ?=
# test processes (pytest-xdist); files stay whole on one process so module fixtures are built once
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile
# a GPU machine may bring its own CUDA build of torch instead of .venv's
GPU_PY ?= $(if $(wildcard $(PY)),$(PY),$(PYTHON))

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast lint bench sweep status tables figures report mme-baseline clean \
	slurm-up slurm-down test-slurm gpu-check

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed ## create .venv and install the harness (torch pinned by TORCH_SPEC)

demo: install ## run the quickstart study on the shipped synthetic data, then tables + figures
	$(PY) -m harness -m experiment=quickstart/default $(ARGS)
	$(PY) -m harness.report results/runs/quickstart

test: install ## run the whole test suite (CPU, no network), as CI does
	$(PYTEST) $(ARGS)

test-fast: install ## unit tests only (skips @pytest.mark.slow: subprocess sweeps, end-to-end runs, big fixtures)
	$(PYTEST) -m "not slow" $(ARGS)

lint: install ## ruff
	$(VENV)/bin/ruff check .

sweep: install ## run a study: make sweep STUDY=tiling_budget [LAUNCHER=basic|joblib|submitit_local|slurm]
	$(PY) -m harness.sweep $(STUDY) --launcher $(LAUNCHER) $(ARGS)

status: install ## per study, which jobs are done, failed or missing: make status [STUDY=tiling_budget]
	$(PY) -m harness.status $(if $(filter command line,$(origin STUDY)),$(STUDY)) $(ARGS)

tables: install ## one tidy table per study (Parquet, CSV, Markdown, LaTeX) under results/tables
	$(PY) -m harness.report results/runs --tables-only

figures: install ## every experiments/*/figures.py, from results/tables, into results/figures
	$(PY) -m harness.report --figures-only

report: install ## tables, then figures
	$(PY) -m harness.report results/runs

mme-baseline: install ## CLIP text-tower MME baseline, scored officially: make mme-baseline ARGS="dataset.path=..."
	$(PY) -m harness.benchmarks.mme.baseline $(ARGS)

bench: install ## speed benchmarks, printed side by side with their references
	@ls bench/*.py >/dev/null 2>&1 && for f in bench/*.py; do $(PY) $$f || exit 1; done || echo "no benchmarks yet"

slurm-up: ## start a single-node SLURM cluster on this machine (root; Debian packages; docs/slurm.md)
	scripts/slurm/start.sh

slurm-down: ## stop the daemons slurm-up started (by pid; jobs still queued are cancelled)
	scripts/slurm/stop.sh

test-slurm: install ## the tests that submit to SLURM (skipped, with the reason, when no cluster answers)
	$(PY) -m pytest -q -m slurm $(ARGS)

clean: ## remove results (keeps results/README.md) and caches
	find results -mindepth 1 -not -name README.md -prune -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache

gpu-check: ## on a machine with a GPU: the CUDA tests, then the answering bench with full-size LMs in bfloat16
	$(GPU_PY) -m pytest -q -rs tests/test_cuda.py tests/test_device_views.py
	$(GPU_PY) bench/bench_vlm.py --device cuda --dtype bfloat16 --full --images 3
