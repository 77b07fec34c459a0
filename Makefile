# Two commands matter: `make lab` (read and run the notebooks) and `make test` (the whole suite).
# Everything runs from a virtual environment in .venv, created on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The exact versions `make setup`, `make lab`, `make test` and CI install (made by `make lock`); with
# `make setup LOCKFILE=` the venv gets the newest versions pyproject.toml's ranges allow instead.
LOCKFILE := requirements-lock.txt
STAMP := $(VENV)/.installed-$(if $(LOCKFILE),locked,ranges)
# uv (resolves the lock in `make lock`, installs it into .venv) lives in a throwaway venv of its own under build/.
UV_VERSION := 0.13.9
UV := build/uv/bin/uv
LOCK_ARGS ?=
NOTEBOOKS ?= notebooks/*.ipynb
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
LAB_WORKSPACES := $(VENV)/share/jupyter/lab/workspaces
# The workspace JupyterLab opens at /lab: the start notebook open, the file browser at the repository root.
LAB_WORKSPACE := $(LAB_WORKSPACES)/default-37a8.jupyterlab-workspace
# Jupyter refuses to run as root unless told that it is meant.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
PYTEST_ARGS ?=
LAB_ARGS ?=

# Which Python made the venv: "real path of the interpreter, major.minor", kept in $(MADE_BY).
MADE_BY := $(VENV)/.made-by
PYTHON_ID := -c 'import os, sys; print(os.path.realpath(sys.executable), "%d.%d" % sys.version_info[:2])'
VENV_STATE := $(shell $(BIN)/python -c 'import sys; print("old" if sys.version_info < (3, 11) else "ok")' 2>/dev/null)
VENV_ID := $(shell cat $(MADE_BY) 2>/dev/null || $(BIN)/python $(PYTHON_ID) 2>/dev/null)
WANT_ID = $(shell $(PYTHON) $(PYTHON_ID) 2>/dev/null)
# The venv is (re)made when it is missing or broken, made by a Python older than 3.11, or, when PYTHON is
# given (on the command line or in the environment), made by another interpreter or version than PYTHON.
# Without PYTHON the venv is kept whatever made it: `make lab` after `make setup PYTHON=python3.12` uses it.
ifeq ($(VENV_STATE),)
  REMAKE := $(VENV) is missing or its Python does not run
else ifeq ($(VENV_STATE),old)
  REMAKE := $(VENV) was made by a Python older than 3.11
else ifneq ($(filter command line environment,$(origin PYTHON)),)
  ifneq ($(WANT_ID),$(VENV_ID))
    REMAKE := $(VENV) was made by $(or $(VENV_ID),an unknown Python), not by $(PYTHON) ($(or $(WANT_ID),which does not run))
  endif
endif

define TOO_OLD
echo "This project needs Python 3.11 or newer; PYTHON=$(PYTHON) is $${found:+Python }$${found:-not found}." >&2; \
echo "Install one, then run make with PYTHON set to it:" >&2; \
echo "  Debian 12:     sudo apt-get install python3 python3-venv       (3.11; then PYTHON=python3)" >&2; \
echo "  Ubuntu 24.04:  sudo apt-get install python3 python3-venv       (3.12; then PYTHON=python3)" >&2; \
echo "  Ubuntu 22.04:  its python3 is 3.10: sudo add-apt-repository ppa:deadsnakes/ppa &&" >&2; \
echo "                 sudo apt-get install python3.12 python3.12-venv (then PYTHON=python3.12)," >&2; \
echo "                 or uv python install 3.12                       (then PYTHON=\$$(uv python find 3.12))" >&2; \
echo "  macOS:         brew install python@3.12                        (then PYTHON=python3.12)" >&2; \
echo "  anywhere:      pyenv install 3.12                              (then PYTHON=\$$(pyenv prefix 3.12)/bin/python3)" >&2; \
echo "e.g. make setup PYTHON=python3.12" >&2
endef

.PHONY: setup lab test check lint execute lock clean distclean FORCE
FORCE:

# Install the project into the venv: the locked versions (exactly those, nothing resolved on the way), then
# the project itself without dependencies, and `pip check` that the lock still satisfies pyproject.toml.
# The venv is brought up to date whenever pyproject.toml or the lock changes.
$(STAMP): pyproject.toml $(LOCKFILE) $(if $(REMAKE),FORCE) | $(if $(LOCKFILE),$(UV))
	@if [ -n "$(REMAKE)" ]; then \
	  found=$$($(PYTHON) -c 'import platform; print(platform.python_version())' 2>/dev/null); \
	  $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { $(TOO_OLD); exit 1; }; \
	  echo "$(REMAKE): making it with $(PYTHON) (Python $$found)"; \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV) && $(PYTHON) $(PYTHON_ID) >$(MADE_BY); \
	fi
ifneq ($(LOCKFILE),)
	$(UV) pip install --python $(BIN)/python --quiet --no-deps --compile-bytecode -r $(LOCKFILE)
	$(UV) pip install --python $(BIN)/python --quiet --no-deps -e .
	@out=$$($(BIN)/python -m pip check) || { echo "$$out" >&2; echo "$(LOCKFILE) does not satisfy pyproject.toml: run make lock" >&2; exit 1; }
else
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
endif
	@rm -f $(VENV)/.installed $(VENV)/.installed-locked $(VENV)/.installed-ranges
	@touch $@

$(UV):
	rm -rf build/uv && $(PYTHON) -m venv build/uv && build/uv/bin/python -m pip install --quiet 'uv==$(UV_VERSION)'

# Re-resolve requirements-lock.txt from pyproject.toml for every Python from 3.11 and every platform, keeping
# the current pins where the ranges still allow them. LOCK_ARGS=--upgrade moves everything to the newest
# release, LOCK_ARGS='--upgrade-package moto' just one package. Commit the lock with the notebooks it changes.
lock: $(UV)
	@$(UV) --version | grep -qF ' $(UV_VERSION)' || { rm -rf build/uv && $(MAKE) --no-print-directory $(UV); }
	$(UV) pip compile pyproject.toml --extra dev --universal --python-version 3.11 --no-header \
	  --quiet $(LOCK_ARGS) --output-file requirements-lock.txt
	@{ echo "# The exact versions make setup, make test and CI (.ci/run) install, for Python 3.11+ on every platform."; \
	   echo "# Made by \`make lock\` from pyproject.toml's ranges with uv $(UV_VERSION) (installed by make into build/uv):"; \
	   echo "#   uv pip compile pyproject.toml --extra dev --universal --python-version 3.11"; \
	   echo "# \`make lock LOCK_ARGS=--upgrade\` moves every package to its newest release. Do not edit by hand."; \
	   grep -v '^#' requirements-lock.txt; } >requirements-lock.txt.new && mv requirements-lock.txt.new requirements-lock.txt

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

## execute: re-run the notebooks in place (strict: every need must be met) so their stored outputs are real,
## with the quiz seed the test suite uses (conftest.py), so that the recorded option orders are the ones compared,
## and a progress file of its own (build/execute-progress), so that recording never adds to yours.
## It first refuses, naming what it found, a machine holding state a fresh one lacks (a swarm, an earlier
## run's images, containers or binfmt rules): a stored output must be what a fresh machine prints.
execute: setup
	@rm -rf build/execute-progress
	CLOUDNOTES_STRICT=1 CLOUDNOTES_PROGRESS="$(CURDIR)/build/execute-progress/progress.jsonl" CLOUDNOTES_QUIZ_SEED=$$($(BIN)/python -c 'from helpers.quiz import RECORDED_SEED; print(RECORDED_SEED)') \
	  bash scripts/system.sh --install -- sh -c '$(BIN)/python -m helpers.leftovers && \
	  $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=900 \
	  --ExecutePreprocessor.record_timing=False "$$@"' execute $(NOTEBOOKS)

clean:
	rm -rf build .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) *.egg-info
