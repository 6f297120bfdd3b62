"""Deleting rows nobody will ask for again, without an external cron.

Login failures older than the throttle's window, idempotency records older than their TTL,
change-feed tombstones older than CHANGES_RETENTION_DAYS, ended logins (with their refresh
tokens) and the change_waiters rows of workers that died waiting are dead weight: the first
two are dropped when their key comes back, but most keys never do, nothing ever dropped a
login, and a waiter's row outlives a crash of its worker.
Each worker runs purge_periodically() in the background; the deletes are bounded batches
(short transactions, short locks), and running them in several workers at once is harmless.
"""

import asyncio
import logging
import random
from datetime import datetime, timedelta

from sqlalchemy import Delete, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts import login_repository
from app.accounts.models import LoginFailure
from app.changes.repository import expired_tombstones
from app.changes.waiter_repository import expired_waiters
from app.config import Settings
from app.database import transaction, utcnow
from app.idempotency.models import IdempotencyKey
from app.idempotency.repository import IDEMPOTENCY_TTL

logger = logging.getLogger(__name__)

BATCH = 500
# A round never runs away: what is left after this many batches waits for the next round.
MAX_BATCHES = 20


def _expired_statements(settings: Settings, now: datetime) -> list[Delete]:
    failures_before = now - timedelta(seconds=settings.login_window_seconds)
    old_failures = (
        select(LoginFailure.id).where(LoginFailure.failed_at <= failures_before).limit(BATCH)
    )
    old_records = (
        select(IdempotencyKey.user_id, IdempotencyKey.key)
        .where(IdempotencyKey.created_at <= now - IDEMPOTENCY_TTL)
        .limit(BATCH)
    )
    record_key = tuple_(IdempotencyKey.user_id, IdempotencyKey.key)
    return [
        delete(LoginFailure).where(LoginFailure.id.in_(old_failures)),
        delete(IdempotencyKey).where(record_key.in_(old_records)),
        expired_tombstones(timedelta(days=settings.changes_retention_days), now),
        expired_waiters(now, BATCH),
    ]


async def purge_expired(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: datetime
) -> int:
    """Delete expired login failures, idempotency records, tombstones and change waiters, and
    ended logins with their tokens; how many went (the tokens not counted)."""
    deleted = 0
    for statement in _expired_statements(settings, now):
        for _ in range(MAX_BATCHES):
            async with sessionmaker() as session, transaction(session):
                count = (await session.execute(statement)).rowcount  # type: ignore[attr-defined]
            deleted += count
            if count < BATCH:
                break
    for _ in range(MAX_BATCHES):
        async with sessionmaker() as session, transaction(session):
            count = await login_repository.purge_ended(session, now, BATCH)
        deleted += count
        if count < BATCH:
            break
    return deleted


async def purge_periodically(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """Forever: wait about PURGE_INTERVAL_SECONDS (jittered, so workers spread out), purge."""
    while True:
        await asyncio.sleep(settings.purge_interval_seconds * random.uniform(0.5, 1.5))  # noqa: S311
        try:
            deleted = await purge_expired(sessionmaker, settings, utcnow())
        except Exception as exc:  # the database may be away for a while: try next round
            logger.warning("purge of expired rows failed: %s", type(exc).__name__)
        else:
            if deleted:
                logger.info("purged %d expired rows", deleted)
