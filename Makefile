# webims: set-up and quality gates.
#   make demo   run the demo (everything in one process)
#   make test   the whole suite: ruff, mypy --strict, purity check, pytest (no skips allowed)
# Both first run scripts/setup.sh (Debian packages, .venv, npm packages; quick when done).

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
TEST_TIMEOUT ?= 300
PYTEST_ARGS ?=

LINT = $(VENV)/bin/ruff check src tests $(wildcard benchmarks)
TYPECHECK = $(VENV)/bin/mypy --strict src/webims
PURITY = $(PY) tests/test_purity.py
# -p webims.testing.no_skip: the run fails if any test was skipped or xfailed.
PYTEST = $(PY) -m pytest -p no:cacheprovider -p webims.testing.no_skip \
	--timeout=$(TEST_TIMEOUT) -ra $(PYTEST_ARGS) tests

.PHONY: help setup demo test lint typecheck purity pytest bench clean

help:
	@echo "make demo       run the demo (webims demo)"
	@echo "make test       whole suite: lint, typecheck, purity, pytest (no skips allowed)"
	@echo "make lint       ruff check src tests benchmarks"
	@echo "make typecheck  mypy --strict src/webims"
	@echo "make purity     protocol cores import no I/O (asyncio, socket, ssl, time, ...)"
	@echo "make pytest     pytest only (PYTEST_ARGS=..., TEST_TIMEOUT=$(TEST_TIMEOUT) s per test)"
	@echo "make bench      run benchmarks/*.py"
	@echo "make setup      Debian packages, .venv and npm packages only"

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/webims demo

test: setup
	$(LINT)
	$(TYPECHECK)
	$(PURITY)
	$(PYTEST)

lint: setup
	$(LINT)

typecheck: setup
	$(TYPECHECK)

purity: setup
	$(PURITY)

pytest: setup
	$(PYTEST)

bench: setup
	@set -e; found=0; for f in benchmarks/*.py; do \
		case "$$(basename "$$f")" in _*|'*.py') continue;; esac; \
		found=1; echo "== $$f"; $(PY) "$$f"; \
	done; [ $$found = 1 ] || echo "no benchmarks yet"

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis .setup.lock
