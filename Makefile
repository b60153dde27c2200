# Nexus: `make run` serves the shipped content; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
DEV_PORT ?= 5000

.PHONY: run dev test install install-dev vnu system-deps lint format import reindex bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The Nu HTML checker for tests/browser/test_html_validation.py (needs npm and Java), kept out of git.
VNU_VERSION := 26.9.27
VNU_STAMP   := build/node/.vnu-jar-$(VNU_VERSION)
$(VNU_STAMP):
	npm install --prefix build/node --no-save --no-audit --no-fund --loglevel=error vnu-jar@$(VNU_VERSION)
	touch $@
## vnu: install the pinned vnu-jar into build/node
vnu: $(VNU_STAMP)

# What the browser, HTML and PostgreSQL tests need from the system: installed when make runs as
# root on Debian (as on CI); otherwise those tests say they were skipped and how to install it.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then scripts/system-deps.sh; fi
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory vnu; \
	 else echo "npm is not installed: the HTML validation test is skipped (install it with: sudo scripts/system-deps.sh)"; fi

## run: install, import the content folder, serve on http://127.0.0.1:$(PORT) with gunicorn
run: install
	$(BIN)/flask --app portal secret-key
	$(BIN)/flask --app portal import
	NEXUS_GUNICORN_BIND=127.0.0.1:$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

## dev: for writers: http://127.0.0.1:$(DEV_PORT) with code and template reload, pages that reload themselves, and `watch`
dev: install
	$(BIN)/flask --app portal --debug dev --port $(DEV_PORT)

import: install
	$(BIN)/flask --app portal import

reindex: install
	$(BIN)/flask --app portal reindex

# Test processes (pytest-xdist): one per core; TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= auto

## test: install what the suite needs (system packages too, as root on Debian), lint, run every test
test: install-dev system-deps
	$(BIN)/ruff check portal tests bench wsgi.py gunicorn.conf.py
	$(BIN)/ruff format --check portal tests bench wsgi.py gunicorn.conf.py
	$(BIN)/bandit -q -r portal
	scripts/with-postgres.sh $(BIN)/python -m pytest -n $(TEST_WORKERS)

lint: install-dev
	$(BIN)/ruff check portal tests bench wsgi.py gunicorn.conf.py

format: install-dev
	$(BIN)/ruff format portal tests bench wsgi.py gunicorn.conf.py
	$(BIN)/ruff check --fix portal tests bench wsgi.py gunicorn.conf.py

bench: install-dev
	$(BIN)/python bench/search.py

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache .hypothesis
