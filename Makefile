# Every target creates its own virtual environment: nothing relies on what is installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint lint-workflows typecheck batch-cycle bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/batch-ops demo

test: $(STAMP) lint-workflows
	$(BIN)/ruff check batch_ops tests $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/pytest

# Offline workflow linting; zizmor goes online if it sees a token, so none is passed to it.
lint-workflows: $(STAMP)
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions actions/*/action.yml
	env -u GITHUB_TOKEN -u GH_TOKEN -u ZIZMOR_GITHUB_TOKEN $(BIN)/zizmor --offline --config .github/zizmor.yml .github/workflows actions

batch-cycle: $(STAMP)
	$(BIN)/batch-ops cycle --wait

# The full benchmark harness of issue #6 is not on main yet (branch `bench`); for now these
# measure the duplicate-candidate recall (issue #4) at full and at a tenth of the size.
bench: $(STAMP)
	$(BIN)/python bench/duplicates_recall.py --tickets 10000 --duplicates 500

bench-quick: $(STAMP)
	$(BIN)/python bench/duplicates_recall.py --tickets 1000 --duplicates 50

clean:
	rm -rf $(VENV)
