# Every target creates its own virtual environment: nothing relies on what is installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck batch-cycle bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/batch-ops demo

test: $(STAMP)
	$(BIN)/ruff check batch_ops tests $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/pytest

batch-cycle: $(STAMP)
	$(BIN)/batch-ops cycle --wait

bench: $(STAMP)
	$(BIN)/python bench/run.py --scale 1.0

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --scale 0.1

clean:
	rm -rf $(VENV)
