"""Startup migrations at scale: many workers, and two replicas, on one empty database."""

import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import create_engine, text

from app.migrations import head_revision
from tests.conftest import TEST_SECRET, TempPostgres
from tests.runtime.server import Server, free_port, serve, wait_ready

MIGRATED = "migrating database from empty to head"


def _start_replica(
    stack: ExitStack, database: TempPostgres, tmp_path: Path, name: str, workers: int
) -> Server:
    """One gunicorn master as a container would run it, with its own lock file."""
    port = free_port()
    env = {
        "DATABASE_URL": database.url,
        "SECRET_KEY": TEST_SECRET,
        "ENVIRONMENT": "production",
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        "LOG_FORMAT": "json",
        # Separate containers share no file system: only the advisory lock stands between them.
        "MIGRATION_LOCK_PATH": str(tmp_path / f"{name}.lock"),
    }
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn_conf.py", "app.main:app"]
    return stack.enter_context(serve(command, env, tmp_path / f"{name}.log", port, ready=False))


def _assert_migrated_once(database: TempPostgres, servers: list[Server], workers: int) -> None:
    records = [json.loads(line) for s in servers for line in s.log().splitlines() if line]
    messages = [str(r["message"]) for r in records]
    assert messages.count(MIGRATED) == 1
    assert messages.count("Application startup complete.") == workers
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL")]
    assert not any("Worker failed to boot" in m or "Traceback" in m for m in messages)
    assert all(s.process.poll() is None for s in servers)
    engine = create_engine(database.url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    assert [v[0] for v in versions] == [head_revision()]


def test_eight_workers_migrate_an_empty_database_once(
    database: TempPostgres, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        server = _start_replica(stack, database, tmp_path, "only", workers=8)
        wait_ready(server)
        _wait_all_started([server], 8)
        _assert_migrated_once(database, [server], workers=8)


def test_two_replicas_migrate_an_empty_database_once(
    database: TempPostgres, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        replicas = [_start_replica(stack, database, tmp_path, n, workers=4) for n in ("a", "b")]
        for replica in replicas:
            wait_ready(replica)
        _wait_all_started(replicas, 8)
        _assert_migrated_once(database, replicas, workers=8)


def _wait_all_started(servers: list[Server], workers: int, timeout: float = 60) -> None:
    """Ready means one worker answers; wait until every worker has finished starting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = sum(s.log().count("Application startup complete.") for s in servers)
        if started >= workers:
            return
        time.sleep(0.2)
