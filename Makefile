# Guichet: `make run` serves the demo, `make test` runs the whole suite.
# DATABASE_URL selects the database (default sqlite:///instance/guichet.db);
# HOST and PORT the address of `make run`.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help venv node_modules chromium install db run test test-slow lint bench clean
.DEFAULT_GOAL := help

help: ## list the targets
	@echo "make TARGET, where TARGET is one of:"
	@grep -E '^[a-z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## create .venv and install the project with its test tools

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[test]'
	touch $@

node_modules: ## install the front-end assets (npm ci), when package.json exists
	@if [ -f package.json ] && { [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; }; \
	then npm ci && touch node_modules; fi

chromium: ## install Debian's Chromium for the browser tests, if missing
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	  else \
	    echo "Chromium is missing; run: sudo apt-get update && sudo apt-get install -y chromium" >&2; \
	    exit 1; \
	  fi; \
	fi

install: venv node_modules ## venv + node_modules

db: install ## create or upgrade the database, seed the demo data, deploy processes/
	mkdir -p instance
	$(BIN)/guichet db upgrade
	$(BIN)/guichet demo-data
	$(BIN)/guichet deploy

run: db ## serve http://$HOST:$PORT (default 127.0.0.1:5000) with one worker beside it
	$(BIN)/guichet worker & worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/guichet serve --host $${HOST:-127.0.0.1} --port $${PORT:-5000}

# The PostgreSQL half leaves out the browser tests (SQLite only: tests/browser/conftest.py)
# and the db_agnostic ones, which cannot differ by database (tests/conftest.py).
test: install chromium ## lint, the suite on SQLite, then on PostgreSQL (without browser tests)
	$(BIN)/ruff check .
	env -u TEST_DATABASE_URL $(BIN)/pytest
	@url=$$(scripts/test-postgres-url); \
	if [ -n "$$url" ]; then \
	  echo "== PostgreSQL half, on $$url"; \
	  TEST_DATABASE_URL=$$url $(BIN)/pytest -m "not browser and not slow and not db_agnostic"; \
	elif [ "$${GUICHET_REQUIRE_POSTGRES:-}" = 1 ]; then \
	  echo "FAILED: GUICHET_REQUIRE_POSTGRES=1 but no PostgreSQL server could be found or started." >&2; \
	  exit 1; \
	else \
	  echo "== PostgreSQL is not available: the PostgreSQL half of the suite was SKIPPED" >&2; \
	fi

test-slow: install ## crash and load tests: real gunicorn on PostgreSQL (LOAD_SECONDS=60)
	@url=$$(scripts/test-postgres-url); \
	if [ -n "$$url" ]; then \
	  echo "== slow tests, on the server of $$url (databases guichet_slow_*)"; \
	  TEST_DATABASE_URL=$$url GUICHET_LOAD_SECONDS=$${LOAD_SECONDS:-60} \
	    $(BIN)/pytest -m slow tests/slow; \
	elif [ "$${GUICHET_REQUIRE_POSTGRES:-}" = 1 ]; then \
	  echo "FAILED: GUICHET_REQUIRE_POSTGRES=1 but no PostgreSQL server could be found or started." >&2; \
	  exit 1; \
	else \
	  echo "== PostgreSQL is not available: the slow tests were SKIPPED" >&2; \
	fi

lint: venv ## ruff
	$(BIN)/ruff check .

bench: install ## benchmark (a few minutes; BENCH_ARGS=--quick is shorter); bench-results/latest.json
	$(BIN)/python -m bench $(BENCH_ARGS)

clean: ## stop the throwaway PostgreSQL, remove it, caches and build output (keeps .venv, instance/)
	-scripts/test-postgres-url --stop
	rm -rf .pgdata build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './.venv/*' -not -path './node_modules/*' -prune -exec rm -rf {} +
