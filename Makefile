# Every target that needs the project installs it first, so `make test` and `make demo` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint docs demo bench gpu-check clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e '.[dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -n 2

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pymarkdown scan --recurse --exclude docs/results.md README.md docs

# The documentation site (mkdocs.yml) into site/; warnings (broken links, unresolved references) are errors.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

demo: install
	$(VENV)/bin/taskresize demo --jobs 2

bench: install
	$(PY) benchmarks/targets.py --append
	$(PY) benchmarks/alternatives.py --append
	$(PY) benchmarks/perf.py --append
	$(PY) benchmarks/resize_speed.py --append
	$(PY) benchmarks/startup.py --append
	$(PY) benchmarks/classic_vs_pillow.py

# On a machine with a CUDA GPU: the tests marked gpu, then the GPU benchmark, appended to docs/results.md.
# On a GPU machine as it comes: its own Python and packages, nothing installed (the lent machines reach no package
# registry); results under $$OUT when set, else build/gpu-check. make gpu-check GPU_CHECK_ARGS=--quick: the short one.
GPU_PYTHON ?= python3
GPU_CHECK_ARGS ?=
gpu-check:
	PYTHONPATH=src $(GPU_PYTHON) benchmarks/gpu_check.py --device cuda $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) build site src/*.egg-info .pytest_cache
