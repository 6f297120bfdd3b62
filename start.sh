#!/bin/sh
# Start todo-api as production does: gunicorn managing uvicorn workers (gunicorn_conf.py).
# The image's CMD; also works by hand from a checkout after `make install`.
set -eu
cd "$(dirname "$0")"
# From a checkout, use the project's virtualenv; in the image it is already on PATH.
if [ -x .venv/bin/gunicorn ]; then
    PATH="$PWD/.venv/bin:$PATH"
fi
# Migrations run in each worker's startup, behind a file lock and a PostgreSQL advisory lock
# (app/migrations.py); RESET_DB is done once, by the master (gunicorn_conf.py).
exec gunicorn -c gunicorn_conf.py app.main:app
