# Two commands for a fresh machine: `make install`, then `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torchaudio only loads beside the torch release it was built for: pin the pair.
TORCH_PINS := torch==2.11.0 torchaudio==2.11.0

.PHONY: install test lint typecheck unit bench bench-index clean

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_PINS) -e ".[dev,ray]"
	$(BIN)/fpkit --version

test: lint typecheck unit

lint:
	$(BIN)/ruff check fpkit tests benchmarks
	$(BIN)/ruff format --check fpkit tests benchmarks

typecheck:
	$(BIN)/mypy

unit:
	$(BIN)/pytest

bench:
	$(BIN)/python benchmarks/throughput.py

# make bench-index DIR=songs/ [ARGS="--parts --runs 2"]: fpkit index end to end, x real time and peak RSS, with matmul rates.
bench-index:
	$(BIN)/python benchmarks/index_speed.py $(DIR) $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
