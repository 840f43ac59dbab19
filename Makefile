# One venv for everything; every target installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-fast check lint typecheck bench stress docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the engine on the repo's own vault with the repo's config (dry-run, template planner).
run: $(STAMP)
	$(BIN)/vault --config config.yaml --vault AI_Employee_Vault start

## Run the whole test suite (what CI runs).
test: $(STAMP)
	$(BIN)/pytest

## Everyday work: everything but the tests that run the real engine in a subprocess (`integration`).
test-fast: $(STAMP)
	$(BIN)/pytest -m "not integration"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

## Lint, types and tests: what CI runs.
check: lint typecheck test

## Stress: random SIGKILLs during bursts, many iterations, and a 20,000-file burst that overflows the
## inotify queue while the engine is stopped (not part of `make test`).
STRESS_ITERATIONS ?= 50
MISSED_EVENTS_FILES ?= 20000
stress: $(STAMP)
	STRESS_ITERATIONS=$(STRESS_ITERATIONS) MISSED_EVENTS_FILES=$(MISSED_EVENTS_FILES) \
		$(BIN)/pytest tests/test_stress.py tests/test_crash.py tests/test_intake.py

## Performance figures (prints; never asserts).
bench: $(STAMP)
	$(BIN)/python benchmarks/cli.py
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/planner.py
	$(BIN)/python benchmarks/gmail.py
	$(BIN)/python benchmarks/execution.py
	$(BIN)/python benchmarks/notify.py

## Regenerate docs/cli.md from the CLI's --help.
docs: $(STAMP)
	$(BIN)/python scripts/cli_docs.py > docs/cli.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
