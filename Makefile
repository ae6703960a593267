# Thin wrappers: each target is plain venv + pip + dvc/pytest underneath.
#   make run    set up .venv, then `dvc repro` (download → noisy_pairs → train → evaluate → plots)
#   make test   set up .venv, then the whole test suite
#   make quick  set up .venv, then a small denoiser in minutes, as the DVC experiment `quick`
#               (python -m cae.quickstart: `dvc exp run --temp -n quick -S dataset=mnist_sample …`)
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
	rm -rf $(VENV) .pytest_cache
