# Two entry points (see README): `make run` (the notebook pipeline, quick profile) and `make test`.
# Both create the project-local virtual environment .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PROFILE ?= quick
PYTEST_ARGS ?=
# Extra `jupyter lab` options, e.g. LAB_ARGS="--port 8890 --ip 0.0.0.0 --no-browser --IdentityProvider.token=secret"
LAB_ARGS ?=
# A PyTorch wheel index, e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu for CPU-only wheels (~1 GB, not ~6 GB)
TORCH_INDEX ?=
# What the git filter strips from notebooks: outputs, execution counts, widget state (nbstripout's defaults) and
# the run-specific metadata that JupyterLab and papermill add; cell ids stay, so saving a notebook unchanged is no diff.
NBSTRIP := -m nbstripout --keep-id --extra-keys 'metadata.language_info metadata.papermill cell.metadata.papermill'
# Jupyter refuses to start as root (the usual user in a container) unless told to.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: install run test test-fast lab clean-runs

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet torch torchvision --index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# notebook outputs never reach git, whatever a lab session saved: .gitattributes names this filter
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	  git config filter.nbstripout.clean "$(abspath $(BIN))/python $(NBSTRIP)" && \
	  git config filter.nbstripout.smudge cat && git config filter.nbstripout.required true; fi
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/hyres run --profile $(PROFILE)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not notebook and not slow and not browser" $(PYTEST_ARGS)

# The project root, so notebooks/ and the executed notebooks and figures under runs/ are both reachable.
# (JupyterLab comes with the dev extra: the browser test needs it too.)
lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=. $(ALLOW_ROOT) $(LAB_ARGS)

clean-runs:
	rm -rf runs/
