"""The fast tier's session (tests/support/sessions.py): what a test writes is never committed,
transaction(session) inside it still stands or falls as a unit, and the app's guard against a
second write outside a transaction still holds."""

import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.database import transaction
from tests.support.rows import add_user
from tests.support.sessions import rolled_back_session

pytestmark = pytest.mark.anyio


def committed_users(engine: Engine, *ids: uuid.UUID) -> int:
    """What another connection sees: committed rows only."""
    with engine.connect() as connection:
        query = select(func.count()).select_from(User).where(User.id.in_(ids))
        return int(connection.scalar(query) or 0)


async def visible_users(session: AsyncSession, *ids: uuid.UUID) -> int:
    query = select(func.count()).select_from(User).where(User.id.in_(ids))
    return int((await session.execute(query)).scalar_one())


async def test_nothing_a_test_writes_is_committed_and_it_is_gone_afterwards(
    migrated_database_url: str, db_engine: Engine, tmp_path: Path
) -> None:
    async with rolled_back_session(migrated_database_url, tmp_path) as session:
        async with transaction(session):  # "commits": releases a savepoint
            first = await add_user(session)
        async with transaction(session):
            second = await add_user(session)
        assert await visible_users(session, first, second) == 2
        assert committed_users(db_engine, first, second) == 0
    assert committed_users(db_engine, first, second) == 0
    async with rolled_back_session(migrated_database_url, tmp_path) as session:
        assert await visible_users(session, first, second) == 0


async def test_a_failed_transaction_undoes_only_its_own_work(db_session: AsyncSession) -> None:
    async with transaction(db_session):
        kept = await add_user(db_session)
    undone: list[uuid.UUID] = []

    async def refuse_halfway() -> None:
        async with transaction(db_session):
            undone.append(await add_user(db_session))
            raise LookupError("the service refuses halfway")

    with pytest.raises(LookupError):
        await refuse_halfway()
    assert await visible_users(db_session, kept) == 1
    assert await visible_users(db_session, *undone) == 0


async def test_a_second_write_outside_a_transaction_is_refused_as_in_a_request(
    db_session: AsyncSession,
) -> None:
    await add_user(db_session)  # one statement: a unit of work by itself
    with pytest.raises(RuntimeError, match="second write outside transaction"):
        await add_user(db_session)


async def test_transaction_puts_the_session_back_in_autocommit_mode(
    db_session: AsyncSession,
) -> None:
    async with transaction(db_session):
        await add_user(db_session)
        await add_user(db_session)  # inside: any number of writes
    await add_user(db_session)
    with pytest.raises(RuntimeError, match="second write outside transaction"):
        await add_user(db_session)
