# All targets use the project virtual environment .venv and are idempotent.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PY_SRC := tracker_core server client training roitrack_cli benchmarks tests scripts

.PHONY: install install-boxmot demo test lint proto proto-check bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	# norfair (a benchmark peer) pins rich<13, which clashes with import-linter; it runs fine with --no-deps.
	$(BIN)/python -m pip install -q 'filterpy==1.4.5' && $(BIN)/python -m pip install -q --no-deps 'norfair==2.1.1'
	touch $(STAMP)

install: $(STAMP) roitrack_api/.generated

# Optional, AGPL-3.0: BoxMOT's trackers as peers of `roitrack bench mot` (docs/tracking.md). --no-deps keeps torch,
# numpy and opencv as they are (checked with pip install --dry-run: its requirements would add opencv-python<5).
install-boxmot: install
	$(BIN)/python -m pip install -q -e '.[dev,bench,bench-boxmot]'
	$(BIN)/python -m pip install -q --no-deps 'boxmot==25.0.0'

# Generated gRPC code: regenerated from proto/ (the source of truth); CI checks it for drift.
roitrack_api/.generated: $(STAMP) $(shell find proto -name '*.proto' 2>/dev/null) scripts/gen_proto.py
	$(BIN)/python scripts/gen_proto.py
	mkdir -p roitrack_api && touch $@

proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py
	touch roitrack_api/.generated

proto-check: $(STAMP)
	$(BIN)/python scripts/gen_proto.py --check

demo: install
	$(BIN)/roitrack demo

lint: install
	$(BIN)/ruff check $(PY_SRC)
	$(BIN)/ruff format --check $(PY_SRC)
	$(BIN)/mypy tracker_core server client training roitrack_cli benchmarks
	$(BIN)/lint-imports
	$(BIN)/python scripts/gen_proto.py --check

test: lint
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/roitrack bench stages --json
	$(BIN)/roitrack bench overhead --json
	$(BIN)/roitrack bench scaling --json
	$(BIN)/roitrack bench floor --json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
