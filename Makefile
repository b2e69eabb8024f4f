# On a fresh machine with only Python 3.11+:
#   make demo   - set up .venv, then reproduce every paper's figures: report/report.html
#   make test   - set up, lint, then run the fast test suite (no tests marked slow)
#   make test-all - lint, then the whole suite, the slow end-to-end runs included (what CI runs)
#   make lint   - ruff and mypy, as configured in pyproject.toml
#   make bench  - the engine benchmark (benchmarks/engine_bench.py)
#   make clean  - remove .venv, report/ and pytest's cache
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# PyTorch, pinned to the release the tests run on; override (e.g. TORCH_SPEC=torch) to take
# another. On Linux the default wheel also installs CUDA's libraries (gigabytes), which
# dnnsim never needs: for the CPU-only build, set PIP_EXTRA_INDEX_URL to PyTorch's CPU wheel
# index (PyTorch's install instructions give its address) before `make`.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
# pytest-xdist workers for make test / test-all: one per core ("auto"); TEST_WORKERS=0 runs the
# suite in one process. loadfile keeps a test module, and the modules sharing the simulated
# validation targets, on one worker (tests/conftest.py), so their set-up runs once.
TEST_WORKERS ?= auto
PYTEST_PARALLEL := -n $(TEST_WORKERS) --dist loadfile

.PHONY: help demo lint test test-all venv bench clean
.DEFAULT_GOAL := help

help:   # plain `make`: what each target does (the lines at the top of this file)
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dnnsim reproduce --out report

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The lint gate runs first: a finding stops the tests before they start.
test: lint
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "not slow"

test-all: lint
	$(PY) -m pytest $(PYTEST_PARALLEL)

bench: $(STAMP)
	$(PY) benchmarks/engine_bench.py

clean:
	rm -rf $(VENV) report .pytest_cache
