# actorsys developer targets. Every target installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install constraints run test test-fast test-faults bench bench-read lint typecheck clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[embedded,test]'
	touch $(STAMP)

## Re-pin constraints.txt to the newest versions pyproject.toml allows (in a scratch venv).
constraints:
	rm -rf .venv-pin && $(PYTHON) -m venv .venv-pin
	.venv-pin/bin/pip install --quiet --upgrade pip
	.venv-pin/bin/pip install --quiet '.[embedded,test]'
	{ head -2 constraints.txt; .venv-pin/bin/pip freeze --exclude-editable | grep -v '^actorsys'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .venv-pin

## Run the daemon on the embedded broker with a simulated IoT feed (Ctrl-C drains and stops).
run: install
	$(BIN)/actorsys run --config config/local.toml

## The whole suite: unit, job stores (SQLite + PostgreSQL), integration against the embedded broker.
test: install
	$(BIN)/pytest -m "not slow"

## Unit tests only (seconds).
test-fast: install
	$(BIN)/pytest tests/unit

## Slow fault-injection scenarios (minutes).
test-faults: install
	$(BIN)/pytest -m slow

bench: install
	$(BIN)/python scripts/bench.py --scale-partitions 4,64 --job-sizes 5000,50000

## Read side of the table output: files per closed hour, agg rows, query time, freshness.
bench-read: install
	$(BIN)/python scripts/bench_read.py

## ruff: lint rules and formatting, checked (nothing rewritten).
lint: install
	$(BIN)/ruff check actorsys tests scripts
	$(BIN)/ruff format --check actorsys tests scripts

## mypy: strict for actorsys/, relaxed for tests/ and scripts/ (pyproject.toml [tool.mypy]).
typecheck: install
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
