"""Throttling of failed password checks (logins, and the current password of a change).

Two limits, both over LOGIN_WINDOW_SECONDS: LOGIN_MAX_FAILURES failures for one email from one
client address lock that email for that address only (an attacker elsewhere cannot lock the
owner out), and LOGIN_MAX_ADDRESS_FAILURES failures from one address, across any emails, lock
that address for all of them (no spraying of many accounts).

The failures live in the database, so every worker and replica sees the same counts. On
PostgreSQL a transaction-scoped advisory lock per email (transaction-scoped: it must work
behind a pooler in transaction mode) serialises the final check and the recording of each
verdict, so a burst of parallel guesses cannot slip past the per-account limit. SQLite
serialises writers anyway (BEGIN IMMEDIATE). The address-wide limit takes no lock of its own:
it would serialise every login behind one proxy; it may be overshot by the verdicts running
at that moment, which is no help to a spray of thousands.
"""

import hashlib
import math
import uuid
from datetime import datetime, timedelta

from fastapi import Request
from sqlalchemy import ColumnElement, Integer, bindparam, delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ADDRESS_LENGTH, LoginFailure
from app.config import Settings
from app.database import dialect_name
from app.errors import TooManyRequests

THROTTLED = "Too many failed login attempts; try again later"


def client_address(request: Request) -> str:
    """The peer's address, or the one a trusted proxy put in X-Forwarded-For: uvicorn's proxy
    headers support (FORWARDED_ALLOW_IPS) has already written it into request.client."""
    return request.client.host[:ADDRESS_LENGTH] if request.client else ""


async def lock_email(session: AsyncSession, email: str) -> None:
    if dialect_name(session) == "postgresql":
        digest = hashlib.sha256(f"login:{email}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _nth_latest(offset: str, *where: ColumnElement[bool]) -> ColumnElement[datetime]:
    # The limit-th most recent failure inside the window (offset: limit - 1): the lock holds
    # until that failure leaves the window.
    return (
        select(LoginFailure.failed_at)
        .where(*where, LoginFailure.failed_at > bindparam("since"))
        .order_by(LoginFailure.failed_at.desc())
        .offset(bindparam(offset, type_=Integer))
        .limit(1)
        .scalar_subquery()
    )


_SAME_ADDRESS = LoginFailure.client_address == bindparam("address")
_VERDICT = select(
    _nth_latest("account_offset", LoginFailure.email == bindparam("email"), _SAME_ADDRESS),
    _nth_latest("address_offset", _SAME_ADDRESS),
)


async def check(
    session: AsyncSession, settings: Settings, email: str, address: str, now: datetime
) -> None:
    """429 while the email has too many failures from this address, or the address has too
    many overall, inside the window. One statement for both."""
    window = timedelta(seconds=settings.login_window_seconds)
    params = {
        "email": email,
        "address": address,
        "since": now - window,
        "account_offset": settings.login_max_failures - 1,
        "address_offset": settings.login_max_address_failures - 1,
    }
    row = (await session.execute(_VERDICT, params)).one()
    locked_since = [failed_at for failed_at in row if failed_at is not None]
    if locked_since:
        # Capped at the window: a failure stamped a moment after `now` (by a request that got
        # the lock first, or by a replica whose clock runs ahead) cannot lock for longer.
        wait = math.ceil((max(locked_since) + window - now).total_seconds())
        raise TooManyRequests(min(wait, settings.login_window_seconds), THROTTLED)


async def record_failure(
    session: AsyncSession, settings: Settings, email: str, address: str, now: datetime
) -> None:
    window = timedelta(seconds=settings.login_window_seconds)
    # Failures that left the window no longer count: drop them as we go.
    await session.execute(
        delete(LoginFailure).where(
            LoginFailure.email == email, LoginFailure.failed_at <= now - window
        )
    )
    await session.execute(
        insert(LoginFailure).values(
            id=uuid.uuid4(), email=email, client_address=address, failed_at=now
        )
    )


async def clear(session: AsyncSession, email: str, address: str) -> None:
    """A success from this address forgets this address's failures for the email only: the
    owner's login cannot reset what an attacker elsewhere has run up."""
    await session.execute(
        delete(LoginFailure).where(
            LoginFailure.email == email, LoginFailure.client_address == address
        )
    )
