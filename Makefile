# Thin wrappers: each target is plain venv + pip + dvc/pytest underneath.
#   make run    set up .venv, then `dvc repro` (download → noisy_pairs → train → evaluate → plots)
#   make test   set up .venv, then the whole test suite
#   make dvc-deps  rewrite dvc.yaml's code deps and params from the code (tools/dvc_deps.py)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test clean

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

clean:
	rm -rf $(VENV) .pytest_cache

.PHONY: dvc-deps
dvc-deps: $(STAMP)
	$(BIN)/python tools/dvc_deps.py
