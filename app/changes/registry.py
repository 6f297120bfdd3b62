"""PostgreSQL: the rows of waiting feed requests in change_waiters, so that the recording
trigger notifies only owners someone waits for (migration 8b3f0d6c2e15, ADR 0412).

A waiting request registers before its last read: a write that commits after the registration
is announced, and one that committed before it is in that read. A writer whose trigger looked
before the row existed holds a shared advisory lock on the owner until it commits, and the
registration takes that lock: it waits for such writers, so they are in the read too. When
one holds it past the lock timeout (a long transaction), the row is written all the same and
that request rechecks every RECHECK_SECONDS instead: late, never missed.

Each request removes its row when it ends (answered, timed out, cancelled, stopped), through a
short pool session of its own: no connection is held while waiting. A crashed worker's rows
expire (the trigger ignores them, app.purge deletes them). The table is UNLOGGED: after a
server crash or failover the rows are gone, but so is the LISTEN connection; when it is back
(`generation` moves), every waiter registers again before it reads.
"""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.changes import waiter_repository
from app.database import transaction

logger = logging.getLogger(__name__)

LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout ran out
# A row outlives its wait by this much: the removal may come a little after the deadline.
MARGIN = timedelta(seconds=30)


class WaiterRegistry:
    """One per worker process, made by the notifier when it LISTENs (PostgreSQL)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        # Moves each time the LISTEN connection is made: rows may have been lost meanwhile.
        self.generation = 0
        self._removals: set[asyncio.Task[None]] = set()

    async def register(self, waiter_id: uuid.UUID, user_id: uuid.UUID, seconds: float) -> bool:
        """Write (or renew) the row. True: every change of the user that is not in a read
        made after this is announced; False: a writer in flight may not be (recheck)."""
        lifetime = timedelta(seconds=seconds) + MARGIN
        try:
            async with self._sessionmaker() as session, transaction(session):
                await waiter_repository.register(session, waiter_id, user_id, lifetime)
        except DBAPIError as exc:
            code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
            if code != LOCK_NOT_AVAILABLE:
                raise
        else:
            return True
        async with self._sessionmaker() as session, transaction(session):
            await waiter_repository.register_unlocked(session, waiter_id, user_id, lifetime)
        return False

    async def unregister(self, waiter_id: uuid.UUID) -> None:
        """Remove the row, to its end even if the request is cancelled meanwhile."""
        task = asyncio.get_running_loop().create_task(self._remove(waiter_id))
        self._removals.add(task)  # a task nobody references may be collected unfinished
        task.add_done_callback(self._removals.discard)
        await asyncio.shield(task)

    async def _remove(self, waiter_id: uuid.UUID) -> None:
        try:
            async with self._sessionmaker() as session, transaction(session):
                await waiter_repository.unregister(session, waiter_id)
        except Exception as exc:  # the row expires anyway; the answer stands
            logger.warning("removing a change waiter failed: %s", type(exc).__name__)


class Registration:
    """One waiting request's row (nothing without a registry: SQLite, or no LISTEN)."""

    def __init__(self, registry: WaiterRegistry | None, user_id: uuid.UUID, seconds: int) -> None:
        self._registry = registry
        self._user_id = user_id
        self._seconds = seconds
        self.id = uuid.uuid4()
        self._generation: int | None = None
        # False: a writer in flight at registration may go unannounced, the waiter rechecks.
        self.sure = True

    async def renew(self) -> None:
        """Before a read: register, or again if the LISTEN connection was made since."""
        registry = self._registry
        if registry is None or self._generation == registry.generation:
            return
        generation = registry.generation
        sure = await registry.register(self.id, self._user_id, self._seconds)
        self._generation = generation
        self.sure = self.sure and sure


@asynccontextmanager
async def registered(
    registry: WaiterRegistry | None, user_id: uuid.UUID, seconds: int
) -> AsyncIterator[Registration]:
    registration = Registration(registry, user_id, seconds)
    try:
        await registration.renew()
        yield registration
    finally:
        if registry is not None:
            await registry.unregister(registration.id)
