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
# The translation catalogues: the app's, and the sandbox's own (vcita localises its pages).
CATALOGUE_DIRS := translations sandbox/translations
PO_FILES := $(wildcard $(addsuffix /*/LC_MESSAGES/messages.po,$(CATALOGUE_DIRS)))
MO_FILES := $(PO_FILES:.po=.mo)

.PHONY: help run serve test test-postgres load hostile-request fuzz lint format install-chromium install-gettext translations messages screenshots clean

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

run: $(APP_STAMP) translations ## Serve the app on http://localhost:5000 (on the built-in sandbox without credentials)
	$(BIN)/python scripts/run.py

serve: $(APP_STAMP) translations ## Serve the app under gunicorn (WEB_CONCURRENCY workers, GUNICORN_THREADS threads)
	$(BIN)/python scripts/run.py --gunicorn

test: $(DEV_STAMP) install-chromium install-gettext translations ## Run every test, on SQLite (installs what they need)
	env -u DATABASE_URL $(BIN)/python -m pytest

test-postgres: $(DEV_STAMP) install-chromium install-gettext translations ## Run every test, two app instances too, on a throwaway PostgreSQL
	scripts/postgres.sh $(BIN)/python -m pytest

load: $(APP_STAMP) ## Run FLOWS (200) connect flows against `make serve`; print figures (ARGS="--rtt-ms 50 --compare": see scripts/load.py)
	$(BIN)/python scripts/load.py --flows $(FLOWS) $(ARGS)

hostile-request: $(APP_STAMP) ## Print the CPU time one hostile request costs `make serve`'s worker and `make run`
	$(BIN)/python scripts/hostile_request.py

fuzz: $(DEV_STAMP) translations ## Send FUZZ_EXAMPLES (20000) random requests to every route; print the count and failures
	$(BIN)/python scripts/fuzz.py --examples $(FUZZ_EXAMPLES)

install-chromium: ## Install Debian's Chromium for the browser tests, when missing and possible
	@scripts/install-chromium.sh

install-gettext: ## Install Debian's gettext (msgfmt checks the catalogues in the tests), when missing and possible
	@scripts/install-debian-package.sh msgfmt gettext "the catalogue checks of the tests (msgfmt --check)"

translations: $(MO_FILES) ## Compile the translation catalogues (run, serve and test do it)

%.mo: %.po | $(APP_STAMP)
	$(BIN)/pybabel --quiet compile --input-file $< --output-file $@

messages: $(APP_STAMP) ## Extract the marked strings into every catalogue (then translate what is new or fuzzy)
	$(BIN)/pybabel extract --mapping-file babel.cfg --add-location file --output-file translations/messages.pot .
	$(BIN)/pybabel update --input-file translations/messages.pot --output-dir translations --ignore-obsolete
	$(BIN)/pybabel extract --mapping-file sandbox/babel.cfg --add-location file --output-file sandbox/translations/messages.pot sandbox
	$(BIN)/pybabel update --input-file sandbox/translations/messages.pot --output-dir sandbox/translations --ignore-obsolete

screenshots: $(DEV_STAMP) install-chromium translations ## Run the browser journeys; save the README's screenshots in docs/screenshots/
	README_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest tests/browser/test_journeys.py tests/browser/test_app_market.py tests/browser/test_languages.py

lint: $(DEV_STAMP) ## Check style with ruff, and types with mypy (the copyable client under --strict)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict app/vcita.py
	$(BIN)/mypy app sandbox

format: $(DEV_STAMP) ## Format the code with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## Remove the virtualenv, caches, test artifacts and compiled catalogues (keeps instance/)
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis test-artifacts htmlcov .coverage $(MO_FILES)
