"""PostgreSQL: the recording trigger notifies only owners a feed request waits for
(change_waiters, app.changes.registry, migration 8b3f0d6c2e15), and a waiter misses nothing
for it: not a write in flight while it registers, and it leaves no row behind."""

import asyncio
import queue
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import asyncpg  # type: ignore[import-untyped]
import pytest
from anyio.from_thread import start_blocking_portal
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from app.changes.notifications import CHANNEL
from app.changes.registry import WaiterRegistry, registered
from app.changes.waiting import RECHECK_SECONDS
from app.config import Settings
from app.database import create_sessionmaker
from app.engines import create_db_engine
from app.purge import purge_expired
from tests.changes.helpers import synced, wait_feed, wait_until, waiting_count
from tests.conftest import ApiUser
from tests.lists.helpers import create_todo


@pytest.fixture(autouse=True)
def _postgres_only(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("change_waiters is PostgreSQL's (SQLite polls the change clock)")


@contextmanager
def listening(database_url: str) -> Iterator["queue.Queue[str]"]:
    """The payloads of `todo_changes`, heard on a raw asyncpg connection of the test's own."""
    heard: queue.Queue[str] = queue.Queue()
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    with start_blocking_portal() as portal:
        connection = portal.call(asyncpg.connect, dsn)
        try:
            listener = lambda *args: heard.put(args[3])  # noqa: E731
            portal.call(connection.add_listener, CHANNEL, listener)
            yield heard
        finally:
            portal.call(connection.close)


def _rows(db_engine: Engine, user: ApiUser) -> int:
    with db_engine.connect() as connection:
        count: int = connection.execute(
            text("SELECT count(*) FROM change_waiters WHERE user_id = CAST(:id AS uuid)"),
            {"id": user.id},
        ).scalar_one()
    return count


def test_only_the_owners_someone_waits_for_are_notified(
    client: TestClient, user: ApiUser, other_user: ApiUser, db_engine: Engine, database_url: str
) -> None:
    token = synced(client, user)
    with listening(database_url) as heard, ThreadPoolExecutor(max_workers=1) as pool:
        polled = pool.submit(wait_feed, client, user, token, 60)
        wait_until(lambda: _rows(db_engine, user) == 1)
        create_todo(client, other_user, title="nobody waits for this")
        mine = create_todo(client, user, title="someone waits for this")
        body = polled.result(timeout=60).json()
        # Notifications come in commit order: the unwatched write's would have come first.
        assert heard.get(timeout=10) == user.id
        time.sleep(0.2)
        assert heard.empty()
    assert [c["id"] for c in body["changes"]] == [mine["id"]]
    assert _rows(db_engine, user) == 0  # answered: its row is gone


def test_a_wait_that_runs_out_or_is_stopped_leaves_no_row(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    token = synced(client, user)
    assert wait_feed(client, user, token, 1).json()["changes"] == []
    assert _rows(db_engine, user) == 0
    with ThreadPoolExecutor(max_workers=1) as pool:
        polled = pool.submit(wait_feed, client, user, token, 60)
        wait_until(lambda: _rows(db_engine, user) == 1)
        assert client.portal is not None
        client.portal.call(client.app.state.change_waiters.stop)  # type: ignore[attr-defined]
        assert polled.result(timeout=30).status_code == 200
    assert _rows(db_engine, user) == 0


# Within the registration's lock timeout (it waits for the writer), and past it (the request
# registers without it and rechecks).
@pytest.mark.parametrize("held", [0.05, 1.0])
def test_a_write_in_flight_while_a_poll_registers_answers_it(
    client: TestClient, user: ApiUser, db_engine: Engine, held: float
) -> None:
    """The trigger of a write that has not committed looked before the row was there, and the
    poll's read does not see the write yet: without the owner's lock nobody would wake it."""
    todo = create_todo(client, user)
    token = synced(client, user)
    with db_engine.connect() as writer, ThreadPoolExecutor(max_workers=1) as pool:
        writer.execute(
            text("UPDATE todos SET title = 'in flight' WHERE id = CAST(:id AS uuid)"),
            {"id": todo["id"]},
        )
        polled = pool.submit(wait_feed, client, user, token, 60)
        wait_until(lambda: waiting_count(client) == 1)
        time.sleep(held)
        writer.commit()
        committed = time.monotonic()
        body = polled.result(timeout=60).json()
        answered = time.monotonic() - committed
    assert [(c["id"], c["item"]["title"]) for c in body["changes"]] == [(todo["id"], "in flight")]
    assert answered < RECHECK_SECONDS + 1.5


def test_a_cancelled_waiter_leaves_no_row(
    settings: Settings, user: ApiUser, db_engine: Engine
) -> None:
    async def cancelled() -> None:
        engine = create_db_engine(settings)
        try:
            registry = WaiterRegistry(create_sessionmaker(engine))

            async def waiting() -> None:
                async with registered(registry, uuid.UUID(user.id), 60):
                    await asyncio.sleep(60)

            task = asyncio.create_task(waiting())
            await asyncio.to_thread(wait_until, lambda: _rows(db_engine, user) == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            await engine.dispose()

    asyncio.run(cancelled())
    assert _rows(db_engine, user) == 0


def test_expired_rows_notify_nobody_and_are_purged(
    client: TestClient,
    user: ApiUser,
    settings: Settings,
    db_engine: Engine,
    database_url: str,
) -> None:
    """A worker that died waiting leaves its row: past expires_at the trigger ignores it."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    with db_engine.begin() as connection:
        connection.execute(
            text("INSERT INTO change_waiters VALUES (:id, CAST(:user AS uuid), :at)"),
            {"id": uuid.uuid4(), "user": user.id, "at": past},
        )
    with listening(database_url) as heard:
        create_todo(client, user)
        time.sleep(0.3)
        assert heard.empty()

    async def purge() -> int:
        engine = create_db_engine(settings)
        try:
            return await purge_expired(create_sessionmaker(engine), settings, datetime.now(UTC))
        finally:
            await engine.dispose()

    assert asyncio.run(purge()) >= 1
    assert _rows(db_engine, user) == 0


def test_rows_lost_with_the_listen_connection_are_written_again(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    """change_waiters is UNLOGGED: a crash or failover empties it, and drops the LISTEN
    connection. When that is made again, the waiters register again (or, the connection up,
    they would sleep to the end of their wait through the user's next write)."""
    token = synced(client, user)
    with ThreadPoolExecutor(max_workers=1) as pool:
        polled = pool.submit(wait_feed, client, user, token, 60)
        wait_until(lambda: _rows(db_engine, user) == 1)
        with db_engine.begin() as connection:  # the crash, as far as the poll can tell
            connection.execute(text("DELETE FROM change_waiters"))
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND application_name LIKE '% listener'"
                )
            )
        # Written again only once the LISTEN connection is back: no more rechecks then.
        wait_until(lambda: _rows(db_engine, user) == 1)
        assert client.app.state.change_waiters.reliable  # type: ignore[attr-defined]
        mine = create_todo(client, user)
        written = time.monotonic()
        body = polled.result(timeout=60).json()
        answered = time.monotonic() - written
    assert [c["id"] for c in body["changes"]] == [mine["id"]]
    assert answered < 5
