"""Waiting feed requests on the real server: a write through one gunicorn worker wakes a poll
waiting on another (PostgreSQL LISTEN/NOTIFY, SQLite's shared clock poll), through PgBouncer
with the listener on the direct URL, and a stopping worker answers its waiters at once."""

import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine, text

from app.config import Settings
from app.engines import create_migration_engine
from app.migrations import upgrade_to_head
from tests.changes.helpers import wait_until
from tests.conftest import TempPostgres
from tests.pgbouncer import APP_POOL_SIZE, pgbouncer
from tests.runtime.server import Server, app_env, gunicorn

PASSWORD = "correct-horse-battery"
FEED = "/api/v1/changes"
_WAITING = re.compile(r'^todo_changes_waiting\{pid="(\d+)"\} ([0-9.]+)$', re.M)


def _user(server: Server) -> dict[str, str]:
    with server.client() as client:
        body = {"email": "waiter@example.com", "password": PASSWORD}
        assert client.post("/api/v1/auth/register", json=body).status_code == 201
        form = {"username": body["email"], "password": PASSWORD}
        token = client.post("/api/v1/auth/token", data=form).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _quiet_token(server: Server, headers: dict[str, str]) -> str:
    """A token with nothing after it (PostgreSQL may repeat changes for a while)."""
    tokens: list[str] = []

    def quiet() -> bool:
        params = {"since": tokens[-1]} if tokens else {}
        with server.client() as client:
            body = client.get(FEED, params=params, headers=headers).json()
        tokens.append(body["next_token"])
        return bool(params) and not body["changes"] and not body["has_more"]

    # As long as a transaction anywhere in the cluster stays open (other test runs too).
    wait_until(quiet, timeout=180)
    return tokens[-1]


def _waiting(server: Server) -> dict[int, int]:
    """Waiting feed requests per worker pid (the todo_changes_waiting gauge)."""
    metrics = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    return {int(pid): int(float(n)) for pid, n in _WAITING.findall(metrics) if float(n)}


def _poll(server: Server, headers: dict[str, str], since: str, wait: int) -> httpx.Response:
    # A connection of its own: whichever worker accepts it.
    with httpx.Client(base_url=server.base_url, timeout=wait + 30) as client:
        return client.get(FEED, params={"since": since, "wait": wait}, headers=headers)


@contextmanager
def _polls_on_every_worker(
    server: Server, headers: dict[str, str], since: str, workers: int = 2
) -> Iterator[list[Future[httpx.Response]]]:
    """Polls waiting 60 s, opened one at a time until each worker holds at least one."""
    with ThreadPoolExecutor(max_workers=40) as pool:
        polls: list[Future[httpx.Response]] = []
        while len(_waiting(server)) < workers:
            assert len(polls) < 40, f"the polls all landed on {_waiting(server)}"
            polls.append(pool.submit(_poll, server, headers, since, 60))
            wait_until(lambda: sum(_waiting(server).values()) == len(polls))
        yield polls


def _write(server: Server, headers: dict[str, str], title: str) -> str:
    with server.client() as client:
        response = client.post("/api/v1/todos", json={"title": title}, headers=headers)
    assert response.status_code == 201, response.text
    todo_id: str = response.json()["id"]
    return todo_id


def _assert_all_answered_with(polls: list[Future[httpx.Response]], todo_id: str) -> None:
    for poll in polls:
        response = poll.result(timeout=90)
        assert response.status_code == 200, response.text
        assert [c["id"] for c in response.json()["changes"]] == [todo_id]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wait.db'}"
    request.applymarker(pytest.mark.postgres)
    database: TempPostgres = request.getfixturevalue("database")
    return database.url


def test_a_write_through_one_worker_wakes_a_poll_waiting_on_the_other(
    database_url: str, tmp_path: Path
) -> None:
    with gunicorn(app_env(database_url, tmp_path), tmp_path, workers=2) as server:
        if database_url.startswith("postgresql"):  # heard by LISTEN, not by a recheck
            wait_until(lambda: _listeners(database_url) == 2)
        headers = _user(server)
        since = _quiet_token(server, headers)
        with _polls_on_every_worker(server, headers, since) as polls:
            todo_id = _write(server, headers, "heard everywhere")
            _assert_all_answered_with(polls, todo_id)


@pytest.mark.postgres
def test_behind_pgbouncer_the_listener_uses_the_direct_url(
    database: TempPostgres, tmp_path: Path
) -> None:
    direct = Settings(_env_file=None, database_url=database.url, migration_lock_path=tmp_path / "m")
    engine = create_migration_engine(direct)
    try:
        upgrade_to_head(direct, engine)
    finally:
        engine.dispose()
    with pgbouncer(tmp_path, database.url) as bouncer:
        env = app_env(
            bouncer.url(database.url),
            tmp_path,
            DB_POOLER="transaction",
            DB_POOL_SIZE=str(APP_POOL_SIZE),
            MIGRATE_ON_STARTUP="false",
            DATABASE_LISTEN_URL=database.url,
        )
        with gunicorn(env, tmp_path, workers=2) as server:
            wait_until(lambda: _listeners(database.url) == 2)
            headers = _user(server)
            since = _quiet_token(server, headers)
            with _polls_on_every_worker(server, headers, since) as polls:
                todo_id = _write(server, headers, "through the pooler")
                _assert_all_answered_with(polls, todo_id)


def _listeners(url: str) -> int:
    """Backends LISTENing for the app on the database itself (not through the pooler)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            count: int = connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = 'todo-api listener' AND query LIKE 'LISTEN%'"
                )
            )
    finally:
        engine.dispose()
    return count


def test_a_stopping_worker_answers_its_waiting_polls_at_once(
    database_url: str, tmp_path: Path
) -> None:
    """SIGTERM (stop()) with polls waiting 60 s, under a graceful timeout longer than that:
    the workers exit long before either (stop() fails after 30 s), and each poll gets its
    empty page or a clean close."""
    env = app_env(database_url, tmp_path, GRACEFUL_TIMEOUT="120")
    with gunicorn(env, tmp_path, workers=2) as server:
        headers = _user(server)
        since = _quiet_token(server, headers)
        with _polls_on_every_worker(server, headers, since) as polls:
            try:
                assert server.stop(timeout=30) == 0
            except subprocess.TimeoutExpired:
                pytest.fail(f"the workers waited for the polls:\n{server.log()}")
            for poll in polls:
                _assert_answered_empty_or_closed(poll)


def _assert_answered_empty_or_closed(poll: Future[httpx.Response]) -> None:
    try:
        response = poll.result(timeout=30)
    except httpx.TransportError:
        return  # closed as the worker left: the client polls again
    assert response.status_code == 200, response.text
    assert response.json()["changes"] == []
