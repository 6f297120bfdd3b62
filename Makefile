# Every target installs what it needs: a fresh clone with Python 3.11, 3.12 or 3.13 is enough.
# Dependencies come from poetry.lock through `poetry export` + `pip install --require-hashes`,
# which needs only a package index (not the JSON API `poetry install` asks for).

# The image's minor first (python:3.12-slim), then the others pyproject.toml allows
# (requires-python >=3.11,<3.14). `make PYTHON=/path/to/python3.12 ...` names one (.ci/run does).
PYTHON ?= $(shell for p in python3.12 python3.13 python3.11 python3; do $$p -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 13)' 2>/dev/null && echo $$p && break; done)
# Only targets that run no Python may go on without one (`make help` always works).
ifeq ($(PYTHON),)
ifneq ($(filter-out help clean test-deps,$(or $(MAKECMDGOALS),help)),)
$(error No Python 3.11, 3.12 or 3.13 found (tried python3.12, python3.13, python3.11 and python3). Install Python 3.12 with its venv module (Debian/Ubuntu: apt-get install python3.12 python3.12-venv; or pyenv install 3.12), or name one with make PYTHON=/path/to/python3.12)
endif
endif
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

.PHONY: help install install-dev run dev test test-fast test-deps test-cluster lint lint-k8s \
	format bench migrate migration clean

# Every target, in the order a newcomer needs them (tests/test_makefile.py keeps this complete).
help:
	@echo "make dev           auto-reload on http://$(HOST):$(PORT), SQLite (./todo-dev.db), debug logs"
	@echo "make run           serve on http://$(HOST):$(PORT) (SQLite unless DATABASE_URL says otherwise)"
	@echo "make test-fast     pytest only, no lint, SQLite only (PG=1: PostgreSQL too): PYTEST_ARGS='tests/todos -x'"
	@echo "make test          lint, type-check, then the whole suite (SQLite + PostgreSQL)"
	@echo "make lint          ruff, mypy --strict, import directions, hadolint, compose, Kubernetes"
	@echo "make lint-k8s      the Kubernetes manifests alone (kubernetes-validate, checkov)"
	@echo "make format        apply ruff's fixes and formatting"
	@echo "make migration m=\"what changed\"  alembic revision --autogenerate, then ruff on the new file"
	@echo "make migrate       alembic upgrade head on DATABASE_URL, behind the app's locks and checks"
	@echo "make install       the service's packages into .venv (install-dev: also the tools)"
	@echo "make install-dev   install, plus the test and lint tools"
	@echo "make test-deps     the Debian packages the tests drive (PgBouncer, Redis, Chromium), if missing"
	@echo "make test-cluster  three replicas behind HAProxy: rolling restart, lost replica, ... (~2 min)"
	@echo "make bench         load benchmark with wrk against PostgreSQL (BENCH_QUICK=1: short)"
	@echo "make clean         remove the virtualenvs and caches"
	@echo "make help          this list"

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
	$(BIN)/uvicorn app.main:app --host $(HOST) --port $(PORT) --proxy-headers --http app.server:BoundedHttpToolsProtocol \
	  --no-server-header

# Development: restarts when a file under app/ changes, always on SQLite (DEV_DATABASE_URL),
# whatever .env says, with debug logs. The settings on this line win over .env's. A file of
# its own, not make run's ./todo.db: `RESET_DB=1 make run` must not wipe what dev has.
# app.devserver is uvicorn's reloader, but a server that cannot start (after a branch switch)
# releases the port and says why; a migration file edited after it was applied is refused.
DEV_DATABASE_URL ?= sqlite:///./todo-dev.db
dev: install
	DATABASE_URL=$(DEV_DATABASE_URL) ENVIRONMENT=development LOG_LEVEL=DEBUG \
	  $(BIN)/python -m app.devserver --reload-dir app --host $(HOST) --port $(PORT)

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
	$(BIN)/python scripts/check_imports.py
	$(BIN)/python tools/check_layers.py
	$(BIN)/hadolint Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Two processes (this machine's cores); tests that start servers share one (tests/conftest.py).
PYTEST_WORKERS ?= 2

test: lint test-deps
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# pytest alone, in one process: what a change needs while it is being made. SQLite only by
# default (-m "not postgres": the PostgreSQL runs carry that marker, tests/conftest.py);
# PG=1 runs them too. PYTEST_ARGS narrows the run (a -m of its own replaces this one).
PG ?= 0
TEST_FAST_MARKERS = $(if $(filter 1,$(PG)),not cluster,not postgres and not cluster)
test-fast: install-dev
	$(BIN)/pytest -m "$(TEST_FAST_MARKERS)" $(PYTEST_ARGS)

# Debian packages the tests drive for real: PgBouncer (transaction mode, tests/pgbouncer.py), Redis
# (the rate limits' shared counts, tests/redis.py) and
# Chromium (the browser test of /docs, tests/browser; Playwright drives Debian's build).
# Installed when missing and possible (root with apt); otherwise those tests skip, or fail
# under CI=true.
test-deps:
	@test -x /usr/sbin/pgbouncer || command -v pgbouncer >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; } || \
	  echo "could not install pgbouncer: the PgBouncer tests will skip (fail with CI=true)" >&2
	@test -x /usr/bin/redis-server || command -v redis-server >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } || \
	  echo "could not install redis-server: the Redis tests will skip (fail with CI=true)" >&2
	@test -x /usr/bin/chromium || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "could not install chromium: the browser test will skip (fail with CI=true)" >&2

# Three replicas behind HAProxy and PgBouncer on a private PostgreSQL, under load: a rolling
# restart, a replica SIGKILLed, the database restarted, a login storm (tests/cluster). Not part
# of `make test` (the `cluster` marker is deselected there); prints the scenario table.
test-cluster: install-dev
	@for pkg in haproxy pgbouncer redis-server; do \
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
	@command -v redis-server >/dev/null 2>&1 || test -x /usr/bin/redis-server || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }
	BENCH_QUICK=$(BENCH_QUICK) BENCH_REPEAT=$(BENCH_REPEAT) $(BIN)/python bench/run.py

# python -m app.migrations: alembic upgrade head behind the locks startup takes, refusing (in
# words, not a traceback) a database at an unknown revision or, in development, a migration
# file changed after it was applied (app/migration_guard.py).
migrate: install
	$(BIN)/python -m app.migrations

# Autogenerate compares the models (app/models.py imports every model module) with the
# database DATABASE_URL names, so that one is brought to head first. Review the new file.
ifneq ($(filter migration,$(MAKECMDGOALS)),)
ifeq ($(strip $(m)),)
$(error Say what the migration does: make migration m="add todos.estimate")
endif
endif
migration: install-dev migrate
	@before=$$(ls alembic/versions/*.py); \
	  echo '$(BIN)/alembic revision --autogenerate -m "$(m)"'; \
	  $(BIN)/alembic revision --autogenerate -m "$(m)" || exit 1; \
	  for f in alembic/versions/*.py; do \
	    echo "$$before" | grep -qxF "$$f" && continue; \
	    $(BIN)/ruff check --fix "$$f" && $(BIN)/ruff format "$$f" || exit 1; \
	    echo "Review $$f, then: make migrate"; \
	  done

clean:
	rm -rf $(VENV) $(TOOLS) $(K8S_TOOLS) .pytest_cache .mypy_cache .ruff_cache
