"""app.retry: a transaction PostgreSQL ended to break a deadlock runs again, and succeeds.

A real deadlock: two transactions lock two users' rows in opposite orders, each waiting for
the other once it holds its first row. PostgreSQL aborts one (40P01); under retrying() that
one runs again after the other committed, so both succeed."""

import asyncio
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.config import Settings
from app.database import create_sessionmaker, transaction
from app.engines import create_db_engine
from app.retry import retrying
from tests.conftest import ApiUser, make_user


def _names(db_engine: Engine, *users: ApiUser) -> list[str | None]:
    with db_engine.connect() as connection:
        return [
            connection.scalar(select(User.full_name).where(User.id == uuid.UUID(u.id)))
            for u in users
        ]


async def _deadlock(settings: Settings, first: ApiUser, second: ApiUser, retry: bool) -> int:
    """Run the two crossed transactions; how many attempts they took in all. LOCK_TIMEOUT_MS
    well past PostgreSQL's deadlock_timeout (1 s): otherwise whichever fires first ends the
    wait, and a lock timeout (55P03, a 503) is not a deadlock to retry."""
    engine = create_db_engine(settings.model_copy(update={"lock_timeout_ms": 10_000}))
    sessionmaker = create_sessionmaker(engine)
    both_hold_one = asyncio.Barrier(2)
    attempts = 0

    async def crossed(session: AsyncSession, rows: tuple[ApiUser, ApiUser], name: str) -> None:
        nonlocal attempts
        attempts += 1
        async with transaction(session):
            for index, user in enumerate(rows):
                await session.execute(
                    update(User).where(User.id == uuid.UUID(user.id)).values(full_name=name)
                )
                if index == 0 and attempts <= 2:  # only the first round meets at the barrier
                    await both_hold_one.wait()

    async def run(rows: tuple[ApiUser, ApiUser], name: str) -> None:
        async with sessionmaker() as session:
            if retry:
                await retrying(lambda: crossed(session, rows, name))
            else:
                await crossed(session, rows, name)

    try:
        # Both to their end before the engine goes: gather() alone raises the victim's error
        # while the other transaction still holds its connection, which it then hands back
        # to the disposed pool, never to be closed (the garbage collector found it, and
        # failed whichever test ran next).
        outcomes = await asyncio.gather(
            run((first, second), "a"), run((second, first), "b"), return_exceptions=True
        )
    finally:
        await engine.dispose()
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return attempts


@pytest.fixture
def two_users(client: TestClient, db_engine: Engine) -> tuple[ApiUser, ApiUser]:
    if db_engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: no deadlock to break")
    return make_user(client), make_user(client)


def test_without_retrying_a_deadlock_fails(
    settings: Settings, two_users: tuple[ApiUser, ApiUser]
) -> None:
    with pytest.raises(DBAPIError) as failed:
        asyncio.run(_deadlock(settings, *two_users, retry=False))
    assert getattr(failed.value.orig, "pgcode", None) == "40P01"


def test_retrying_runs_the_deadlock_victim_again(
    settings: Settings, two_users: tuple[ApiUser, ApiUser], db_engine: Engine
) -> None:
    assert asyncio.run(_deadlock(settings, *two_users, retry=True)) == 3
    # The victim ran last: both rows carry its name.
    names = _names(db_engine, *two_users)
    assert names[0] == names[1]
    assert names[0] in {"a", "b"}
