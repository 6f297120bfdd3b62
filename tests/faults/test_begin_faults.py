"""A transaction whose BEGIN fails must not poison its pooled connection (issue 29).

The issue: after heavy load one pooled connection failed every transaction with a 500,
"SAVEPOINT can only be used in transaction blocks", until a restart. The mechanism, in the
installed libraries: asyncpg's Transaction.start() records itself as the connection's
transaction (`_top_xact`) before it sends BEGIN, and keeps that record when BEGIN fails;
SQLAlchemy's adapter starts tracking the transaction only once BEGIN succeeded, so neither
its rollback nor the pool's reset on return clears it; and since the connection is still open,
SQLAlchemy does not treat the error as a disconnect. The next transaction on that connection
is taken by asyncpg for a nested one: it sends SAVEPOINT, outside any transaction, and fails
the same way, for ever.

What makes BEGIN fail: an error from the server while it runs BEGIN on a connection that
stays open, i.e. a cancel (pg_cancel_backend; a pooler or an operator cancelling) or the
statement timeout. BEGIN takes microseconds, so the test holds the backend in the middle of
it: with the logging collector on and log_statement = all, a backend writes its statement to
the logger's pipe after its statement timeout is armed; the logger is stopped and the pipe full
(PostgresCluster.stalled_logging), so the backend waits there, exactly as behind a logger
that cannot keep up under load. The faults are injected while it waits.

A cancelled request (a client gone, an asyncio timeout) and a killed backend are covered too:
SQLAlchemy already invalidates the connection for those (CancelledError and TimeoutError are
"exit exceptions" to it; a closed connection is a disconnect), and they must stay that way.

Not behind PgBouncer: on each transaction it first sends the server connection its own
`SET client_encoding`, which is the statement the stalled log holds, not BEGIN. The mechanism
is the client's either way: PgBouncer passes the server's error on and keeps the client's
connection open, as a direct connection stays open.
"""

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from app.config import Settings
from app.main import create_app
from tests.conftest import PASSWORD, TEST_SECRET
from tests.faults.cluster import ClusterUnavailable, PostgresCluster

pytestmark = pytest.mark.timeout(120)

APP_NAME = "todo-begin-faults"  # the service's application_name (project_name) here
STATEMENT_TIMEOUT_MS = 2000
POLL = 0.01
WAIT_TIMEOUT = 10.0
OTHER_USERS = 3

Fault = Literal["cancel", "statement_timeout", "task_cancelled", "terminate"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """This module's own cluster (it overrides tests/faults/conftest.py's): the logging
    collector on, so that stalled_logging() can hold a backend in the middle of a statement."""
    try:
        created = PostgresCluster.create({"logging_collector": "on"})
    except ClusterUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires the database fault tests: {exc}")
        pytest.skip(f"SKIPPING DATABASE FAULT TESTS: {exc}")
    try:
        created.start()
        yield created
    finally:
        created.destroy()


def _settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        secret_key=TEST_SECRET,
        environment="test",
        bcrypt_rounds=4,
        project_name=APP_NAME,
        migration_lock_path=tmp_path / "migrate.lock",
        # One pooled connection: every request after the fault gets the one BEGIN failed on.
        db_pool_size=1,
        db_max_overflow=0,
        db_statement_timeout_ms=STATEMENT_TIMEOUT_MS,
    )


class Admin:
    """Observes and hits the app's backend from a connection of the test's own (which logs
    nothing: the app's database alone logs its statements)."""

    def __init__(self, cluster: PostgresCluster) -> None:
        self.engine = create_engine(
            cluster.admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT"
        )

    def app_backends(self) -> list[tuple[int, str, str]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT pid, state, query FROM pg_stat_activity "
                    "WHERE application_name = :name AND backend_type = 'client backend'"
                ),
                {"name": APP_NAME},
            )
            return [(row.pid, row.state, row.query) for row in rows]

    def signal(self, function: str, pid: int) -> None:
        with self.engine.connect() as connection:
            sent = connection.scalar(text(f"SELECT {function}(:pid)"), {"pid": pid})
        assert sent, f"{function}({pid}) found no such backend"


async def _wait_in_begin(admin: Admin) -> int:
    """The app's backend, once it is seen running BEGIN (and held there by the stalled log)."""
    deadline = time.monotonic() + WAIT_TIMEOUT
    while time.monotonic() < deadline:
        for pid, state, query in await asyncio.to_thread(admin.app_backends):
            if state == "active" and query.startswith("BEGIN"):
                return pid
        await asyncio.sleep(POLL)
    raise AssertionError(f"the app's BEGIN never stalled: {admin.app_backends()}")


async def _login(client: httpx.AsyncClient, email: str) -> str:
    body = {"email": email, "password": PASSWORD}
    assert (await client.post("/api/v1/auth/register", json=body)).status_code == 201
    form = {"username": email, "password": PASSWORD}
    response = await client.post("/api/v1/auth/token", data=form)
    assert response.status_code == 200, response.text
    token: str = response.json()["refresh_token"]
    return token


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def _inject(
    fault: Fault, admin: Admin, pid: int, request: "asyncio.Task[httpx.Response]"
) -> None:
    if fault == "cancel":
        await asyncio.to_thread(admin.signal, "pg_cancel_backend", pid)
    elif fault == "terminate":
        await asyncio.to_thread(admin.signal, "pg_terminate_backend", pid)
    elif fault == "task_cancelled":
        request.cancel()
    else:
        # Past the server's statement timeout (its timer started when BEGIN arrived, before it
        # was seen stalled), well short of asyncpg's own bound, twice as long without a pooler,
        # which would end the wait with a client-side TimeoutError instead (the test checks
        # that it did not: SQLSTATE 57014 is the server's).
        await asyncio.sleep(STATEMENT_TIMEOUT_MS / 1000 * 1.25)


async def _scenario(
    cluster: PostgresCluster, settings: Settings, fault: Fault
) -> tuple[httpx.Response | None, list[int], bool]:
    admin = Admin(cluster)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        victim = await _login(client, "victim@example.com")
        others = [await _login(client, f"other{i}@example.com") for i in range(OTHER_USERS)]
        # A refresh starts with its transaction: its first statement is BEGIN.
        request = asyncio.create_task(_refresh(client, victim))
        try:
            with cluster.stalled_logging():
                pid = await _wait_in_begin(admin)
                await _inject(fault, admin, pid, request)
            faulted: httpx.Response | None = await request
        except asyncio.CancelledError:
            faulted = None
        finally:
            request.cancel()  # a no-op once it is done; else it must not outlive the app
        # Other users, one request at a time, on the pool's one connection.
        statuses = [(await _refresh(client, token)).status_code for token in others]
        statuses.append((await _refresh(client, victim)).status_code)  # not rotated: retry
        statuses.append(
            (
                await client.post(
                    "/api/v1/auth/token",
                    data={"username": "other0@example.com", "password": PASSWORD},
                )
            ).status_code
        )
        return faulted, statuses, await _gone(admin, pid)


async def _gone(admin: Admin, pid: int) -> bool:
    """Whether the backend BEGIN failed on has ended (its connection closed, not pooled)."""
    deadline = time.monotonic() + WAIT_TIMEOUT
    while time.monotonic() < deadline:
        if pid not in [found for found, _, _ in await asyncio.to_thread(admin.app_backends)]:
            return True
        await asyncio.sleep(POLL)
    return False


@pytest.mark.parametrize("fault", ["cancel", "statement_timeout", "task_cancelled", "terminate"])
def test_a_failed_begin_leaves_no_poisoned_connection(
    cluster: PostgresCluster,
    fault_database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
) -> None:
    database = make_url(fault_database_url).database
    cluster.execute(f"ALTER DATABASE \"{database}\" SET log_statement = 'all'")
    settings = _settings(fault_database_url, tmp_path)
    with (
        caplog.at_level(logging.ERROR, logger="app.errors"),
        caplog.at_level(logging.WARNING, logger="app.pool_health"),
    ):
        faulted, statuses, closed = asyncio.run(_scenario(cluster, settings, fault))
    logged = "\n".join(record.getMessage() for record in caplog.records)

    # The fault hit the request where it was meant to: its BEGIN.
    if fault == "task_cancelled":
        assert faulted is None
    else:
        assert faulted is not None
        assert faulted.status_code == 503, faulted.text
        assert faulted.headers["Retry-After"] == "1"
    if fault in ("cancel", "statement_timeout"):
        assert "SQLSTATE 57014" in logged, logged  # the server's cancel, not a client timeout
        # ... and the connection it left behind was discarded at its next checkout.
        assert "discarding a pooled connection whose BEGIN failed" in logged, logged

    # No later transaction may fail: before the fix, every one on the connection BEGIN failed
    # on was a 500 ("SAVEPOINT can only be used in transaction blocks"), until a restart.
    assert statuses == [200] * (OTHER_USERS + 2), logged
    assert "SAVEPOINT" not in logged
    # The connection BEGIN failed on was closed, not given out again.
    assert closed
