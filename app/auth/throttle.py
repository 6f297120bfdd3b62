"""Login throttling: after N failures for one email within the window, refuse until it passes.

The failures live in the database, so every worker and replica sees the same count. On
PostgreSQL a transaction-scoped advisory lock per email serialises attempts for that email
(held until the request's commit), so a burst of parallel guesses cannot all slip in under
the limit before any of them is recorded. SQLite serialises writers anyway (BEGIN IMMEDIATE).
"""

import hashlib
import math
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from app.auth.models import LoginFailure
from app.config import Settings
from app.errors import TooManyRequests

THROTTLED = "Too many failed login attempts; try again later"


def lock_email(session: Session, email: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(f"login:{email}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def check(session: Session, settings: Settings, email: str, now: datetime) -> None:
    """Raise 429 while the email has LOGIN_MAX_FAILURES failures inside the window."""
    window = timedelta(seconds=settings.login_window_seconds)
    # The max-th most recent failure: the email stays locked until it leaves the window.
    oldest_counted = session.scalar(
        select(LoginFailure.failed_at)
        .where(LoginFailure.email == email, LoginFailure.failed_at > now - window)
        .order_by(LoginFailure.failed_at.desc())
        .offset(settings.login_max_failures - 1)
        .limit(1)
    )
    if oldest_counted is not None:
        retry_after = math.ceil((oldest_counted + window - now).total_seconds())
        raise TooManyRequests(retry_after, THROTTLED)


def record_failure(session: Session, settings: Settings, email: str, now: datetime) -> None:
    window = timedelta(seconds=settings.login_window_seconds)
    # Failures that left the window no longer count: drop them as we go.
    session.execute(
        delete(LoginFailure).where(
            LoginFailure.email == email, LoginFailure.failed_at <= now - window
        )
    )
    session.add(LoginFailure(email=email, failed_at=now))
    session.flush()


def clear(session: Session, email: str) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.email == email))
