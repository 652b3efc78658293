# VGR: the two commands a newcomer needs are `make demo` and `make test`.
# Both run `make setup` first, which is idempotent (see scripts/setup.sh).
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo screenshots browser test lint types unit integration bench bench-ingest bench-edge bench-rules detection-report clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/vgr demo

# docs/screenshots/*.png from a small live demo stack, in headless Debian chromium.
screenshots: setup
	$(PY) scripts/screenshots.py

browser: setup
	$(PY) -m pytest tests/browser $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: setup
	$(VENV)/bin/mypy

unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: setup
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

test: setup lint types
	$(PY) -m pytest $(PYTEST_ARGS)

bench-ingest: setup
	$(PY) -m bench.ingest

bench-edge: setup
	$(PY) -m bench.edge_footprint

bench-rules: setup
	$(PY) -m bench.rules

# A fresh labelled fleet from SEED through the real pipeline; writes docs/detection-report.md.
SEED ?= 1
VEHICLES ?= 40
detection-report: setup
	$(PY) -m bench.detection --seed $(SEED) --vehicles $(VEHICLES)

clean:
	rm -rf .mypy_cache .ruff_cache .pytest_cache build *.egg-info
