"""What wakes waiting feed requests (app.changes.waiting): one source per worker process,
started in the lifespan (after gunicorn forks), whatever the number of waiters.

PostgreSQL: one asyncpg connection LISTENs on `todo_changes`, which the recording trigger
notifies with the owner's id inside the writing transaction (migration e5c1d7a93b42) when
someone waits for that owner (change_waiters: app.changes.registry, migration 8b3f0d6c2e15),
so the notification arrives when, and only if, the change commits, from any worker or replica. It
is a direct connection (DATABASE_LISTEN_URL): a transaction-mode pooler hands the server
connection that ran LISTEN to other clients. When it drops, waiters fall back to rechecking
(ChangeWaiters.reliable) and the connection is made again with a growing pause; once it is
back every waiter reads once more, for what committed while nobody listened.

SQLite (one host): a poll of the change clock every POLL_SECONDS, one statement per tick for
the whole process and only while someone waits; when the clock moved, one more statement asks
which waiting users have changes after the old value. It sees commits of every worker on the
file, since they all bump the same clock.
"""

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.changes import repository
from app.changes.registry import WaiterRegistry
from app.changes.waiting import RECHECK_SECONDS as RECHECK
from app.changes.waiting import ChangeWaiters
from app.config import Settings

logger = logging.getLogger(__name__)

CHANNEL = "todo_changes"  # the migration's channel
POLL_SECONDS = 0.5
# The LISTEN connection: how often it is checked (a peer that vanished sends nothing), and
# the longest pause between attempts to make it again.
PING_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 30.0
NO_LISTEN_URL = (
    "DB_POOLER=transaction and no DATABASE_LISTEN_URL: waiting feed requests recheck every "
    "%s s instead of hearing changes at once; set DATABASE_LISTEN_URL to a direct connection"
)


class PostgresListener:
    def __init__(self, url: str, waiters: ChangeWaiters, settings: Settings) -> None:
        # asyncpg's own DSN: the driver part of a SQLAlchemy URL means nothing to it.
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        self._waiters = waiters
        self._connect_timeout = settings.db_connect_timeout
        # Named, so that pg_stat_activity tells these connections from the request pool's.
        self._application_name = f"{settings.project_name} listener"

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._listen()
                backoff = 0.5
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                logger.warning("LISTEN %s failed (%s): retrying in %.1f s", CHANNEL, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _listen(self) -> None:
        listening = await asyncpg.connect(
            self._dsn,
            timeout=self._connect_timeout,
            server_settings={"application_name": self._application_name},
        )
        lost = asyncio.Event()
        try:
            listening.add_termination_listener(lambda _connection: lost.set())
            await listening.add_listener(CHANNEL, self._heard)
            if self._waiters.registry is not None:
                # change_waiters is UNLOGGED: after a crash or failover its rows are gone, so
                # each waiter woken below registers again before it reads.
                self._waiters.registry.generation += 1
            self._waiters.reliable = True
            # Whatever committed while nobody listened: every waiter reads once more.
            self._waiters.wake_all()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PING_SECONDS):
                        await lost.wait()
                if not lost.is_set():
                    await listening.fetchval("SELECT 1", timeout=self._connect_timeout)
        finally:
            self._waiters.reliable = False
            self._waiters.wake_all()  # they recheck until it is back
            with contextlib.suppress(Exception):
                await listening.close(timeout=1)

    def _heard(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            user_id = uuid.UUID(payload)
        except ValueError:
            return  # not the trigger's
        self._waiters.wake(user_id)


class SQLitePoll:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], waiters: ChangeWaiters
    ) -> None:
        self._sessionmaker = sessionmaker
        self._waiters = waiters
        self._task: asyncio.Task[None] | None = None
        # The poll hears every commit while it runs (see _tick for its first one).
        waiters.reliable = True
        waiters.on_first_waiter = self._start

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        seen: int | None = None
        while len(self._waiters) and not self._waiters.stopping:
            try:
                seen = await self._tick(seen)
            except Exception:  # a locked or busy file: the next tick tries again
                logger.exception("polling the change clock failed")
            await asyncio.sleep(POLL_SECONDS)

    async def _tick(self, seen: int | None) -> int:
        async with self._sessionmaker() as session:
            clock = await repository.change_clock(session)
            if seen is None:
                # The poll's first clock: a waiter may have read its page before it, and a
                # change may have committed in between. Each reads once more, after it.
                self._waiters.wake_all()
            elif clock != seen:
                users = self._waiters.users()
                for user_id in await repository.owners_changed_after(session, users, seen):
                    self._waiters.wake(user_id)
        return clock

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Notifier:
    """The process's source, started and stopped by the lifespan."""

    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.waiters = ChangeWaiters()
        self._poll: SQLitePoll | None = None
        self._listening: asyncio.Task[None] | None = None
        if settings.is_sqlite:
            self._poll = SQLitePoll(sessionmaker, self.waiters)
            return
        url = settings.listen_url
        if url is None:
            logger.warning(NO_LISTEN_URL, RECHECK)
            return
        # The trigger notifies only the owners registered here (app.changes.registry).
        self.waiters.registry = WaiterRegistry(sessionmaker)
        listener = PostgresListener(url, self.waiters, settings)
        self._listening = asyncio.get_running_loop().create_task(listener.run())

    def stop_waiting(self) -> None:
        """The worker is stopping: waiters answer now (also before uvicorn waits for them)."""
        self.waiters.stop()

    async def close(self) -> None:
        self.waiters.stop()
        if self._poll is not None:
            await self._poll.close()
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
