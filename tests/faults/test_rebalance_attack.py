"""Issue 29 HIGH 2 against a real server (gunicorn, PostgreSQL): one account's list moves
cannot take the service down, and readiness does not queue behind the request pool."""

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from tests.conftest import PASSWORD, TempPostgres
from tests.runtime.server import Server, app_env, gunicorn


def _account(server: Server) -> tuple[str, dict[str, str]]:
    email = f"attack-{uuid.uuid4().hex[:10]}@example.com"
    with server.client() as client:
        registered = client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        token = client.post(
            "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
        ).json()["access_token"]
    return registered.json()["id"], {"Authorization": f"Bearer {token}"}


def _wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _lock_waiters(engine: Engine) -> int:
    """The service's backends waiting for a lock now."""
    with engine.connect() as connection:
        return (
            connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = 'todo-api' AND wait_event_type = 'Lock'"
                )
            )
            or 0
        )


def test_readiness_answers_while_the_request_pool_is_exhausted(
    database: TempPostgres, tmp_path: Path
) -> None:
    """The pool's only connection waits on a row lock (no lock timeout, so it stays): the
    readiness probe still answers 200 within a second (it used to wait DB_POOL_TIMEOUT for a
    pooled connection, then 503: Kubernetes would take every such pod out of service)."""
    env = app_env(
        database.url, tmp_path,
        DB_POOL_SIZE="1", DB_MAX_OVERFLOW="0", DB_POOL_TIMEOUT="5", LOCK_TIMEOUT_MS="0",
        DB_STATEMENT_TIMEOUT_MS="30000",
    )  # fmt: skip
    observer = create_engine(database.url)
    with gunicorn(env, tmp_path, workers=1) as server:
        _, headers = _account(server)
        with server.client() as client:
            todo = client.post("/api/v1/todos", json={"title": "held"}, headers=headers).json()
        with observer.connect() as held, ThreadPoolExecutor(1) as pool:
            held.execute(
                text("SELECT id FROM todos WHERE id = :id FOR UPDATE"),
                {"id": uuid.UUID(todo["id"])},
            )

            def write() -> int:
                with server.client() as client:
                    path = f"/api/v1/todos/{todo['id']}"
                    return client.patch(path, json={"title": "w"}, headers=headers).status_code

            pending = pool.submit(write)
            _wait_until(lambda: _lock_waiters(observer) >= 1, timeout=10)
            with server.client() as client:
                started = time.monotonic()
                ready = client.get("/health/ready")
                took = time.monotonic() - started
            held.rollback()
            assert pending.result(timeout=30) == 200
        print(
            f"  /health/ready with the request pool exhausted: {ready.status_code} in {took:.3f} s"
        )
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready", "database": "ok"}
        assert took < 1.0, took
    observer.dispose()
