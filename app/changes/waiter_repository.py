"""The statements of change_waiters (PostgreSQL): the waiting feed requests the recording
trigger notifies for (migration 8b3f0d6c2e15, app.changes.registry)."""

import uuid
from datetime import datetime, timedelta

from sqlalchemy import Delete, Interval, bindparam, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.changes.models import ChangeWaiter

# The migration's advisory lock class: the trigger holds (LOCK_CLASS, hashtext(owner)) shared
# from its look at change_waiters to its commit.
LOCK_CLASS = 412
_LOCK = text(
    f"SELECT pg_advisory_xact_lock({LOCK_CLASS}, hashtext(CAST(:user_id AS text)))"
).bindparams(bindparam("user_id", type_=None))
# How long a registration waits for the owner's writers in flight before it gives up.
_LOCK_TIMEOUT = text("SET LOCAL lock_timeout = '200ms'")
_REGISTER = insert(ChangeWaiter).values(
    id=bindparam("id"),
    user_id=bindparam("user_id"),
    expires_at=func.now() + bindparam("lifetime", type_=Interval()),
)
_REGISTER = _REGISTER.on_conflict_do_update(
    index_elements=[ChangeWaiter.id], set_={"expires_at": _REGISTER.excluded.expires_at}
)


async def register(
    session: AsyncSession, waiter_id: uuid.UUID, user_id: uuid.UUID, lifetime: timedelta
) -> None:
    """Within a transaction: wait (up to the lock timeout) for the user's writers that looked
    at change_waiters before this row, then write it (again: its expiry moves)."""
    await session.execute(_LOCK_TIMEOUT)
    await session.execute(_LOCK, {"user_id": str(user_id)})
    await register_unlocked(session, waiter_id, user_id, lifetime)


async def register_unlocked(
    session: AsyncSession, waiter_id: uuid.UUID, user_id: uuid.UUID, lifetime: timedelta
) -> None:
    params = {"id": waiter_id, "user_id": user_id, "lifetime": lifetime}
    await session.execute(_REGISTER, params)


async def unregister(session: AsyncSession, waiter_id: uuid.UUID) -> None:
    await session.execute(delete(ChangeWaiter).where(ChangeWaiter.id == waiter_id))


def expired_waiters(now: datetime, limit: int) -> Delete:
    """A batch of rows past their expiry (crashed workers'): app.purge runs it."""
    old = select(ChangeWaiter.id).where(ChangeWaiter.expires_at < now).limit(limit)
    return delete(ChangeWaiter).where(ChangeWaiter.id.in_(old.scalar_subquery()))
