# Thin wrappers: each target is plain venv + pip + dvc/pytest/ruff/mypy underneath.
#   make run        set up .venv, then `dvc repro` (download → noisy_pairs → train → evaluate → plots)
#   make test       set up .venv, then the whole test suite
#   make lint       ruff check and ruff format --check on src, tests, benchmarks and tools
#   make typecheck  mypy on src (settings in pyproject.toml)
#   make test-fast  the tests without the end-to-end dvc runs (pytest -m "not slow")
#   make dvc-deps   rewrite dvc.yaml's code deps and params from the code (tools/dvc_deps.py)
#   make quick      set up .venv, then a small denoiser in minutes, as the DVC experiment `quick`
#                   (python -m cae.quickstart: `dvc exp run --temp -n quick -S dataset=mnist_sample …`)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test quick clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $@

run: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest

quick: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m cae.quickstart

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# --- code checks: lint, typecheck, test-fast ---
CHECKED := src tests benchmarks tools

.PHONY: lint typecheck test-fast

lint: $(STAMP)
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/ruff format --check $(CHECKED)

typecheck: $(STAMP)
	$(BIN)/mypy

test-fast: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -m "not slow"

.PHONY: dvc-deps
dvc-deps: $(STAMP)
	$(BIN)/python tools/dvc_deps.py
