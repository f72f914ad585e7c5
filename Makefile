# Two entry points on a fresh machine (Python >= 3.11 and a C compiler):
#   make demo   installs into .venv and runs the main job on its embedded default
#   make test   installs into .venv, lints (ruff), type-checks (mypy) and runs the test suite
# and the documentation, CI's second target:
#   make docs   installs the docs extra and builds the site into docs/_build/html (warnings are errors, the
#               tutorials run, internal links are checked)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed
# mypy reads the package through a tree of links named as it is imported (sobolev_rf.derive, ...)
TYPES  := build/typecheck

.PHONY: demo test lint typecheck bench install docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sobolev-rf demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	rm -rf $(TYPES) && mkdir -p $(TYPES)/sobolev_rf
	ln -s $(CURDIR)/derive $(CURDIR)/numeric $(CURDIR)/codegen $(TYPES)/sobolev_rf/
	cd $(TYPES) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p sobolev_rf

test: lint typecheck
	$(BIN)/python -m pytest -q

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	touch $(DOCS_STAMP)

# the notebooks call `sobolev-rf`, so the venv's bin goes first on their PATH
docs: $(DOCS_STAMP)
	rm -rf docs/_build/html docs/_build/jupyter_execute
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	$(BIN)/python docs/check_links.py docs/_build/html

bench: $(STAMP)
	$(BIN)/python benchmarks/simulate.py

clean:
	rm -rf $(VENV) build *.egg-info sobolev-rf-out .pytest_cache docs/_build docs/reference/api docs/reference/modules docs/reference/cli
