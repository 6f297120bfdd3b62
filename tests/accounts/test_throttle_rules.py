"""The throttle's rules as functions over the login_failures table (app/accounts/throttle.py),
fast tier: a rolled-back session per test, on SQLite and PostgreSQL, with the clock passed in
(`now`) instead of waited for. The HTTP tests (test_throttle*.py) keep the races and the 429s
as a client sees them; these pin the arithmetic: which failures count, for how long, and
what a success forgets.
"""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import throttle
from app.accounts.models import LoginFailure
from app.config import Settings
from app.database import transaction
from app.errors import TooManyRequests
from tests.support.rows import add_user

pytestmark = pytest.mark.anyio

SETTINGS = Settings(
    _env_file=None,
    login_max_failures=3,
    login_window_seconds=600,
    login_max_address_failures=5,
    login_max_account_failures=4,
)
NOW = datetime(2031, 3, 4, 12, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=SETTINGS.login_window_seconds)


def key(user_id: uuid.UUID | None, address: str = "192.0.2.1") -> throttle.Key:
    return throttle.Key(email="owner@example.com", user_id=user_id, address=address)


async def fail(session: AsyncSession, who: throttle.Key, at: datetime, times: int = 1) -> None:
    for n in range(times):
        async with transaction(session):
            await throttle.lock_account(session, who)
            await throttle.record_failure(session, SETTINGS, who, at + timedelta(seconds=n))


async def retry_after(session: AsyncSession, who: throttle.Key, now: datetime) -> int | None:
    try:
        await throttle.check(session, SETTINGS, who, now)
    except TooManyRequests as refused:
        return int((refused.headers or {})["Retry-After"])
    return None


async def test_the_limit_locks_until_its_oldest_counted_failure_leaves_the_window(
    db_session: AsyncSession,
) -> None:
    async with transaction(db_session):
        owner = await add_user(db_session)
    who = key(owner)
    await fail(db_session, who, NOW, times=2)
    assert await retry_after(db_session, who, NOW + timedelta(seconds=5)) is None
    await fail(db_session, who, NOW + timedelta(seconds=10))
    # Failures at +0, +1 and +10 s: locked until +0 s leaves the window, at +600 s.
    assert await retry_after(db_session, who, NOW + timedelta(seconds=20)) == 580
    assert await retry_after(db_session, who, NOW + WINDOW - timedelta(seconds=1)) == 1
    assert await retry_after(db_session, who, NOW + WINDOW) is None


async def test_another_address_is_not_locked_by_the_owners_limit_until_the_account_cap(
    db_session: AsyncSession,
) -> None:
    async with transaction(db_session):
        owner = await add_user(db_session)
    attacker, elsewhere = key(owner, "203.0.113.7"), key(owner, "198.51.100.9")
    await fail(db_session, attacker, NOW, times=3)
    assert await retry_after(db_session, attacker, NOW + timedelta(seconds=5)) is not None
    assert await retry_after(db_session, elsewhere, NOW + timedelta(seconds=5)) is None
    # The fourth untrusted failure anywhere reaches the account-wide cap: every address.
    await fail(db_session, key(owner, "198.51.100.200"), NOW + timedelta(seconds=6))
    assert await retry_after(db_session, elsewhere, NOW + timedelta(seconds=7)) is not None


async def test_unknown_emails_count_like_accounts(db_session: AsyncSession) -> None:
    nobody = key(None)
    await fail(db_session, nobody, NOW, times=3)
    assert await retry_after(db_session, nobody, NOW + timedelta(seconds=5)) is not None


async def test_a_success_forgets_only_its_own_addresss_failures(db_session: AsyncSession) -> None:
    async with transaction(db_session):
        owner = await add_user(db_session)
    here, there = key(owner, "192.0.2.1"), key(owner, "192.0.2.99")
    await fail(db_session, here, NOW, times=2)
    await fail(db_session, there, NOW, times=3)
    await throttle.clear(db_session, here)
    count = select(func.count()).select_from(LoginFailure).where(LoginFailure.user_id == owner)
    assert (await db_session.execute(count)).scalar_one() == 3
    assert await retry_after(db_session, there, NOW + timedelta(seconds=5)) is not None


async def test_recording_a_failure_drops_the_accounts_expired_ones(
    db_session: AsyncSession,
) -> None:
    async with transaction(db_session):
        owner = await add_user(db_session)
    who = key(owner)
    await fail(db_session, who, NOW - 2 * WINDOW, times=3)
    await fail(db_session, who, NOW)
    stamps = select(LoginFailure.failed_at).where(LoginFailure.user_id == owner)
    assert list((await db_session.execute(stamps)).scalars()) == [NOW]
