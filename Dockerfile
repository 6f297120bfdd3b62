# todo-api: gunicorn + uvicorn workers (start.sh, gunicorn_conf.py), non-root, on python:*-slim.
#   docker build -t todo-api .        docker compose up   (then http://localhost:8000/docs)
# PYTHON_IMAGE swaps the base image (another 3.11-3.13 minor, a mirror, a pinned digest); both
# stages use it, so the virtualenv is built by the very interpreter that runs it.
ARG PYTHON_IMAGE=python:3.12-slim

# ---- builder: the locked main dependencies (no dev group) in /opt/venv, slimmed ---------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    POETRY_VIRTUALENVS_CREATE=false

# binutils (strip, readelf) for docker/slim-venv.sh; this stage is never shipped. Unpinned: the
# base image's Debian release decides the version, and any binutils strips the same way.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/*

# Poetry only turns poetry.lock into a hashed requirements file (`poetry install` needs PyPI's
# JSON API; pip needs only the simple index). It lives in its own venv and stays in this stage.
RUN python -m venv /opt/poetry \
 && /opt/poetry/bin/pip install --no-cache-dir "poetry==2.5.1" "poetry-plugin-export==1.10.1"

WORKDIR /build
COPY pyproject.toml poetry.lock ./

# Every package is pinned and hash-checked; wheels only, so the build never needs a compiler.
# The app's venv gets no pip of its own: the base image's pip installs into it (--python).
# No bytecode yet (--no-compile): the bytecode stage writes it for what the service imports.
# slim-venv.sh cut drops what the service never loads (tests, C sources, stubs, symbols):
# the script's header lists each cut and its cost.
COPY docker/slim-venv.sh ./docker/
RUN /opt/poetry/bin/poetry export --only main -f requirements.txt -o requirements.txt \
 && python -m venv --without-pip /opt/venv \
 && python -m pip --python /opt/venv/bin/python install --no-cache-dir --no-compile \
      --require-hashes --no-deps --only-binary=:all: -r requirements.txt \
 && sh docker/slim-venv.sh cut /opt/venv

# ---- bytecode: .pyc for the modules the service imports, and only those ----------------------
# The runtime sets PYTHONDONTWRITEBYTECODE, so a module without a .pyc would be compiled by
# every worker at every start, and a .pyc of a module never imported is dead weight (pip's
# compile-everything was ~26 MB, about 11 MB of it for modules the service never loads).
# warm_bytecode.py starts the service from a copy of its files, in-process, and Python writes
# bytecode for what it imports. A separate stage: changing the app reruns only this step.
FROM builder AS bytecode
COPY docker/warm_bytecode.py ./docker/
COPY alembic.ini gunicorn_conf.py start.sh ./service/
COPY alembic/ ./service/alembic/
COPY app/ ./service/app/
RUN sh docker/slim-venv.sh bytecode /opt/venv /build/service

# ---- runtime: the venv and the service's own files, nothing else -----------------------------
FROM ${PYTHON_IMAGE} AS runtime

# Production unless told otherwise: a forgotten setting must not skip the signing-key check or
# allow RESET_DB. So the image needs SECRET_KEY (>= 32 bytes), or SECRET_KEY_FILE pointing into
# a private volume where the service generates one (compose does: README, "Security"); no key
# is baked in or invented. DATABASE_URL: SQLite in /app/data, the one directory the app user
# may write (mount a volume there); compose points it at PostgreSQL.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENVIRONMENT=production \
    DATABASE_URL=sqlite:////app/data/todo.db

# A system user with no home directory: nothing in the service writes outside /app/data and
# /tmp (gunicorn's control socket, which would want $HOME, is off in gunicorn_conf.py).
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin app \
 && mkdir -p /app/data \
 && chown app:app /app/data \
 && chmod 700 /app/data

WORKDIR /app
COPY --from=bytecode /opt/venv /opt/venv
# Code stays root-owned and read-only to the service.
COPY alembic.ini gunicorn_conf.py start.sh ./
COPY alembic/ ./alembic/
COPY app/ ./app/

# Numeric, so runtimes that enforce runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
EXPOSE 8000
# Liveness only (/health never touches the database); urllib because slim has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["./start.sh"]
