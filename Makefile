# Two commands matter: `make lab` (read and run the notebooks) and `make test` (the whole suite).
# Everything runs from a virtual environment in .venv, created on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS ?= notebooks/*.ipynb
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
LAB_WORKSPACES := $(VENV)/share/jupyter/lab/workspaces
# The workspace JupyterLab opens at /lab: the start notebook open, the file browser at the repository root.
LAB_WORKSPACE := $(LAB_WORKSPACES)/default-37a8.jupyterlab-workspace
# Jupyter refuses to run as root unless told that it is meant.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
PYTEST_ARGS ?=
LAB_ARGS ?=

.PHONY: setup lab test check lint execute clean distclean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(LAB_SETTINGS): scripts/lab-overrides.json $(STAMP)
	@mkdir -p $(dir $@)
	cp $< $@

$(LAB_WORKSPACE): scripts/lab-workspace.json $(STAMP)
	@mkdir -p $(dir $@)
	cp $< $@

setup: $(STAMP) $(LAB_SETTINGS) $(LAB_WORKSPACE)

## lab: open JupyterLab on this repository (127.0.0.1, with a token), starting the Docker daemon if needed
lab: setup
	bash scripts/system.sh -- $(BIN)/jupyter lab $(ROOT_FLAG) \
	  --ServerApp.ip=127.0.0.1 --ServerApp.root_dir="$(CURDIR)" \
	  --LabApp.workspaces_dir="$(CURDIR)/$(LAB_WORKSPACES)" $(LAB_ARGS)

## test: system parts (as root), then unit tests, every notebook under nbval, and lint
test: setup
	bash scripts/system.sh --install -- $(MAKE) --no-print-directory check

check: lint
	$(BIN)/python -m pytest -p no:cacheprovider --nbval --nbval-current-env \
	  --nbval-sanitize-with tests/nbval-sanitize.cfg --nbval-cell-timeout=900 --durations=8 $(PYTEST_ARGS)

lint:
	$(BIN)/ruff check helpers tests notebooks conftest.py

## execute: re-run the notebooks in place (strict: every need must be met) so their stored outputs are real
execute: setup
	CLOUDNOTES_STRICT=1 bash scripts/system.sh --install -- $(BIN)/jupyter nbconvert --to notebook \
	  --execute --inplace --ExecutePreprocessor.timeout=900 --ExecutePreprocessor.record_timing=False \
	  $(NOTEBOOKS)

clean:
	rm -rf build .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) *.egg-info
