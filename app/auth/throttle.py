"""Login throttling: after N failures for one email within the window, refuse until it passes.

The failures live in the database, so every worker and replica sees the same count. On
PostgreSQL a transaction-scoped advisory lock per email serialises the final check and the
recording of each verdict, so a burst of parallel guesses cannot all slip in under the limit.
SQLite serialises writers anyway (BEGIN IMMEDIATE).
"""

import hashlib
import math
import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import LoginFailure
from app.config import Settings
from app.database import dialect_name
from app.errors import TooManyRequests

THROTTLED = "Too many failed login attempts; try again later"


async def lock_email(session: AsyncSession, email: str) -> None:
    if dialect_name(session) == "postgresql":
        digest = hashlib.sha256(f"login:{email}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def check(session: AsyncSession, settings: Settings, email: str, now: datetime) -> None:
    """Raise 429 while the email has LOGIN_MAX_FAILURES failures inside the window."""
    window = timedelta(seconds=settings.login_window_seconds)
    # The max-th most recent failure: the email stays locked until it leaves the window.
    result = await session.execute(
        select(LoginFailure.failed_at)
        .where(LoginFailure.email == email, LoginFailure.failed_at > now - window)
        .order_by(LoginFailure.failed_at.desc())
        .offset(settings.login_max_failures - 1)
        .limit(1)
    )
    oldest_counted = result.scalar()
    if oldest_counted is not None:
        # Capped at the window: a failure stamped a moment after `now` (by a request that got
        # the lock first, or by a replica whose clock runs ahead) cannot lock for longer.
        wait = math.ceil((oldest_counted + window - now).total_seconds())
        raise TooManyRequests(min(wait, settings.login_window_seconds), THROTTLED)


async def record_failure(
    session: AsyncSession, settings: Settings, email: str, now: datetime
) -> None:
    window = timedelta(seconds=settings.login_window_seconds)
    # Failures that left the window no longer count: drop them as we go.
    await session.execute(
        delete(LoginFailure).where(
            LoginFailure.email == email, LoginFailure.failed_at <= now - window
        )
    )
    await session.execute(insert(LoginFailure).values(id=uuid.uuid4(), email=email, failed_at=now))


async def clear(session: AsyncSession, email: str) -> None:
    await session.execute(delete(LoginFailure).where(LoginFailure.email == email))
