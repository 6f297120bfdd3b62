# Every target installs what it needs: a fresh clone with Python 3.11+ is enough.
# Dependencies come from poetry.lock through `poetry export` + `pip install --require-hashes`,
# which needs only a package index (not the JSON API `poetry install` asks for).

PYTHON ?= $(shell for p in python3.12 python3.13 python3; do $$p -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
# Poetry lives in its own venv: it only exports the lock and must not mix with the app's packages.
TOOLS := .venv-tools
POETRY := $(TOOLS)/bin/poetry
POETRY_VERSION := 2.5.1
POETRY_EXPORT_VERSION := 1.10.1
# The Kubernetes lint tools (kubectl, kubernetes-validate, checkov): their own venv, as checkov
# pins much of what the app uses at other versions; hashed pins in requirements-lint.txt.
K8S_TOOLS := .venv-k8s
K8S_REQUIREMENTS := deploy/kubernetes/requirements-lint.txt
HOST ?= 127.0.0.1
PORT ?= 8000
export POETRY_VIRTUALENVS_CREATE := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install install-dev run test test-deps test-cluster lint lint-k8s format bench migrate clean

help:
	@echo "make run      serve on http://$(HOST):$(PORT) (SQLite unless DATABASE_URL says otherwise)"
	@echo "make test     lint, type-check and run the whole test suite (SQLite + PostgreSQL)"
	@echo "make test-cluster  three replicas behind HAProxy: rolling restart, lost replica, ... (~2 min)"
	@echo "make lint     ruff, mypy --strict, hadolint (Dockerfile), compose schema check, Kubernetes manifests"
	@echo "make format   apply ruff's fixes and formatting"
	@echo "make bench    load benchmark with wrk against PostgreSQL (BENCH_QUICK=1: short)"
	@echo "make migrate  alembic upgrade head"

$(POETRY):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q "poetry==$(POETRY_VERSION)" "poetry-plugin-export==$(POETRY_EXPORT_VERSION)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.main: poetry.lock pyproject.toml | $(POETRY) $(BIN)/python
	$(POETRY) export --only main -f requirements.txt -o $(VENV)/requirements-main.txt
	$(BIN)/pip install -q --require-hashes --no-deps -r $(VENV)/requirements-main.txt
	touch $@

$(VENV)/.dev: $(VENV)/.main
	$(POETRY) export --only dev -f requirements.txt -o $(VENV)/requirements-dev.txt
	$(BIN)/pip install -q --require-hashes --no-deps -r $(VENV)/requirements-dev.txt
	touch $@

install: $(VENV)/.main
install-dev: $(VENV)/.dev

run: install
	$(BIN)/uvicorn app.main:app --host $(HOST) --port $(PORT) --proxy-headers --http app.server:BoundedHttpToolsProtocol

$(K8S_TOOLS)/.installed: $(K8S_REQUIREMENTS)
	$(PYTHON) -m venv $(K8S_TOOLS)
	$(K8S_TOOLS)/bin/pip install -q --require-hashes --no-deps -r $(K8S_REQUIREMENTS)
	touch $@

# deploy/kubernetes rendered with kustomize, validated against the Kubernetes schemas (strict)
# and checked by checkov.
lint-k8s: $(K8S_TOOLS)/.installed
	K8S_TOOLS=$(K8S_TOOLS)/bin deploy/kubernetes/check.sh

lint: install-dev lint-k8s
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app
	$(BIN)/hadolint Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Two processes (this machine's cores); tests that start servers share one (tests/conftest.py).
PYTEST_WORKERS ?= 2

test: lint test-deps
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# Debian packages the tests drive for real: PgBouncer (transaction mode, tests/pgbouncer.py) and
# Chromium (the browser test of /docs, tests/browser; Playwright drives Debian's build).
# Installed when missing and possible (root with apt); otherwise those tests skip, or fail
# under CI=true.
test-deps:
	@test -x /usr/sbin/pgbouncer || command -v pgbouncer >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; } || \
	  echo "could not install pgbouncer: the PgBouncer tests will skip (fail with CI=true)" >&2
	@test -x /usr/bin/chromium || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "could not install chromium: the browser test will skip (fail with CI=true)" >&2

# Three replicas behind HAProxy and PgBouncer on a private PostgreSQL, under load: a rolling
# restart, a replica SIGKILLed, the database restarted, a login storm (tests/cluster). Not part
# of `make test` (the `cluster` marker is deselected there); prints the scenario table.
test-cluster: install-dev
	@for pkg in haproxy pgbouncer; do \
	  test -x /usr/sbin/$$pkg || command -v $$pkg >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkg >/dev/null; } || \
	  echo "could not install $$pkg: the cluster tests will skip (fail with CI=true)" >&2; \
	done
	$(BIN)/pytest -m cluster tests/cluster $(PYTEST_ARGS)

# BENCH_QUICK=1: under three minutes, without the 1M-row scale scenario.
# BENCH_REPEAT=N: rounds per scenario, reported as the median (default 3; 1 when quick).
BENCH_QUICK ?= 0
BENCH_REPEAT ?=

bench: install-dev
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
	BENCH_QUICK=$(BENCH_QUICK) BENCH_REPEAT=$(BENCH_REPEAT) $(BIN)/python bench/run.py

migrate: install
	$(BIN)/alembic upgrade head

clean:
	rm -rf $(VENV) $(TOOLS) $(K8S_TOOLS) .pytest_cache .mypy_cache .ruff_cache
