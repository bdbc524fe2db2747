# All targets use the project virtual environment .venv and are idempotent.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PY_SRC := tracker_core server client training roitrack_cli benchmarks tests scripts
# The locked versions of every package the dev and bench extras install (pyproject.toml keeps the ranges for
# people who install the package). `make lock` refreshes it; see docs/operations.md, "Reproducible installs".
LOCK := requirements/lock.txt
EXTRAS := dev,bench
# norfair (a benchmark peer) pins rich<13, which clashes with import-linter; it runs fine with --no-deps.
NORFAIR := 'filterpy==1.4.5' 'norfair==2.1.1'

.PHONY: install install-boxmot demo test lint proto proto-check bench bench-smoke lock lock-upgrade clean

# $(call pip_install,VENV,PIP OPTIONS): the project with its extras, then norfair without its dependencies.
define pip_install
	$(1)/bin/python -m pip install -q --upgrade pip
	$(1)/bin/python -m pip install -q $(2) -e '.[$(EXTRAS)]'
	$(1)/bin/python -m pip install -q $(2) $(word 1,$(NORFAIR)) && $(1)/bin/python -m pip install -q $(2) --no-deps $(word 2,$(NORFAIR))
endef

# Installs exactly the locked versions. It never regenerates roitrack_api/ (the committed generated code is
# what `make lint` checks against proto/; `make proto` regenerates it).
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(call pip_install,$(VENV),-c $(LOCK))
	$(BIN)/python scripts/check_lock.py $(LOCK)
	touch $(STAMP)

install: $(STAMP)

# Optional, AGPL-3.0: BoxMOT's trackers as peers of `roitrack bench mot` (docs/tracking.md). --no-deps keeps torch,
# numpy and opencv as they are (checked with pip install --dry-run: its requirements would add opencv-python<5).
# The packages the lock pins keep their locked versions; lapx (the extra's one package) is resolved.
install-boxmot: install
	$(BIN)/python -m pip install -q -c $(LOCK) -e '.[$(EXTRAS),bench-boxmot]'
	$(BIN)/python -m pip install -q --no-deps 'boxmot==25.0.0'

# Refresh the lock after a dependency change in pyproject.toml (one command): a throw-away venv installs the
# project with the current lock as constraints (locked versions stay, new packages are resolved), then its
# `pip freeze` becomes the lock. `make lock-upgrade` resolves everything afresh (newest versions in the ranges).
# When grpcio-tools changes version, run `make proto` after it and commit both.
lock:
	$(MAKE) _lock LOCK_OPTS='-c $(LOCK)'

lock-upgrade:
	$(MAKE) _lock LOCK_OPTS=

.PHONY: _lock
_lock:
	rm -rf .lock-venv && $(PY) -m venv .lock-venv
	$(call pip_install,.lock-venv,$(LOCK_OPTS))
	.lock-venv/bin/python scripts/check_lock.py --write $(LOCK)
	rm -rf .lock-venv

# Generated gRPC code: regenerated from proto/ (the source of truth) only here; `make lint` checks it for drift.
proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

proto-check: $(STAMP)
	$(BIN)/python scripts/gen_proto.py --check

# The demo serves with --backend auto: the fastest installed inference backend that matches torch fp32 (make
# install brings OpenVINO and ONNX Runtime with the dev extra); it prints which backend and precision it chose.
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

# Every `roitrack bench` subcommand at its smallest size, checking the JSON each writes (also part of `make test`).
bench-smoke: install
	$(BIN)/python -m pytest -q tests/integration/test_bench_smoke.py

bench: install
	$(BIN)/roitrack bench stages --json
	$(BIN)/roitrack bench overhead --json
	$(BIN)/roitrack bench scaling --json
	$(BIN)/roitrack bench floor --json

clean:
	rm -rf $(VENV) .lock-venv .mypy_cache .ruff_cache .pytest_cache *.egg-info
