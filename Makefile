# vcita Connect. `make run` serves the app; `make test` runs every test. Both set up what they need.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APP_STAMP := $(VENV)/.app-installed
DEV_STAMP := $(VENV)/.dev-installed
FLOWS ?= 200
FUZZ_EXAMPLES ?= 20000

.PHONY: help run serve test test-postgres load hostile-request fuzz lint format install-chromium screenshots clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(APP_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(APP_STAMP)

run: $(APP_STAMP) ## Serve the app on http://localhost:5000 (on the built-in sandbox without credentials)
	$(BIN)/python scripts/run.py

serve: $(APP_STAMP) ## Serve the app under gunicorn (WEB_CONCURRENCY workers, GUNICORN_THREADS threads)
	$(BIN)/python scripts/run.py --gunicorn

test: $(DEV_STAMP) install-chromium ## Run every test, on SQLite (installs what they need)
	env -u DATABASE_URL $(BIN)/python -m pytest

test-postgres: $(DEV_STAMP) install-chromium ## Run every test, two app instances too, on a throwaway PostgreSQL
	scripts/postgres.sh $(BIN)/python -m pytest

load: $(APP_STAMP) ## Run FLOWS (200) connect flows against `make serve`; print figures (ARGS="--rtt-ms 50 --compare": see scripts/load.py)
	$(BIN)/python scripts/load.py --flows $(FLOWS) $(ARGS)

hostile-request: $(APP_STAMP) ## Print the CPU time one hostile request costs `make serve`'s worker and `make run`
	$(BIN)/python scripts/hostile_request.py

fuzz: $(DEV_STAMP) ## Send FUZZ_EXAMPLES (20000) random requests to every route; print the count and failures
	$(BIN)/python scripts/fuzz.py --examples $(FUZZ_EXAMPLES)

install-chromium: ## Install Debian's Chromium for the browser tests, when missing and possible
	@scripts/install-chromium.sh

screenshots: $(DEV_STAMP) install-chromium ## Run the browser journeys; save the README's screenshots in docs/screenshots/
	README_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest tests/browser/test_journeys.py tests/browser/test_app_market.py

lint: $(DEV_STAMP) ## Check style with ruff, and types with mypy (the copyable client under --strict)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict app/vcita.py
	$(BIN)/mypy app sandbox

format: $(DEV_STAMP) ## Format the code with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## Remove the virtualenv, caches and test artifacts (keeps instance/)
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis test-artifacts htmlcov .coverage
