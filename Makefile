# The two commands: `make run` (the app on its embedded default) and `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

.PHONY: run test lint services browser tools bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.base-installed: requirements/base.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/base.txt
	touch $@

$(VENV)/.dev-installed: requirements/base.txt requirements/prod.txt requirements/dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/dev.txt
	touch $@ $(VENV)/.base-installed

run: $(VENV)/.base-installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f deploy/Procfile.embedded start --port $(PORT)

# Postgres and Redis: use DATABASE_URL/REDIS_URL if given, else start the local ones if installed
# but stopped (CI and developer machines have them as Debian packages).
services:
	@if [ -z "$$DATABASE_URL" ] && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
		echo "Starting PostgreSQL..."; \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
		for i in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	fi
	@if [ -z "$$DATABASE_URL" ] && ! psql -h 127.0.0.1 -U postgres -lqt 2>/dev/null | cut -d'|' -f1 | grep -qw datamind; then \
		createdb -h 127.0.0.1 -U postgres datamind 2>/dev/null || true; \
	fi
	@if [ -z "$$REDIS_URL" ] && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then \
		echo "Starting Redis..."; \
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no; \
		for i in $$(seq 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.5; done; \
	fi

# Debian's chromium for the Playwright browser tests (Playwright's own browser download is not used).
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			echo "Installing Debian's chromium for the browser tests..."; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "chromium is not installed and cannot be installed here: browser tests will be skipped."; \
		fi; \
	fi

# nginx (its configuration in deploy/ is checked with `nginx -t`) and wrk (bench/http_load.py), from Debian.
tools:
	@if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ] || ! command -v wrk >/dev/null 2>&1; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			echo "Installing Debian's nginx-light and wrk..."; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null; \
		else \
			echo "nginx/wrk are not installed and cannot be installed here: their checks will be skipped."; \
		fi; \
	fi

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(VENV)/.dev-installed services browser tools lint
	DJANGO_SETTINGS_MODULE=datamind.test_settings $(BIN)/python manage.py check
	DJANGO_SETTINGS_MODULE=datamind.test_settings $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest -m "not browser"
	# Playwright's sync API keeps an event loop in the test thread for the whole session, which
	# Django's async-safety check would take for async code: browser tests run on their own.
	DJANGO_ALLOW_ASYNC_UNSAFE=true $(BIN)/pytest -m browser

bench: $(VENV)/.dev-installed services tools
	@for b in bench/[!_]*.py; do echo "== $$b"; DJANGO_SETTINGS_MODULE=datamind.test_settings $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var staticfiles
