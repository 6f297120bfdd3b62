"""The unit of work: every commit happens before the response is sent (a failed commit is
never a 2xx); statements commit on their own, db.transaction() blocks commit together; a
second write outside a block is refused."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, select, text

from app.auth.models import LoginFailure
from app.config import Settings
from app.database import UnitOfWork, create_db_engine, unit_of_work, utcnow
from app.errors import AppError
from app.todos.models import Todo
from tests.conftest import ApiUser

REJECT_AT_COMMIT = "rejected at commit"


@pytest.fixture
def commit_time_failure(client: TestClient, db_engine: Engine) -> Iterator[None]:
    """A deferred constraint trigger: the INSERT succeeds, only the COMMIT fails.

    Depends on `client`, whose startup migrates the database the trigger is created in."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("deferred constraint triggers are a PostgreSQL feature")
    with db_engine.begin() as connection:
        connection.execute(
            text(
                "CREATE FUNCTION reject_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN RAISE EXCEPTION 'rejected' USING ERRCODE = 'check_violation'; END $$"
            )
        )
        connection.execute(
            text(
                "CREATE CONSTRAINT TRIGGER reject_at_commit AFTER INSERT ON todos "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                f"WHEN (NEW.title = '{REJECT_AT_COMMIT}') EXECUTE FUNCTION reject_at_commit()"
            )
        )
    try:
        yield
    finally:
        with db_engine.begin() as connection:
            connection.execute(text("DROP TRIGGER reject_at_commit ON todos"))
            connection.execute(text("DROP FUNCTION reject_at_commit()"))


@pytest.mark.usefixtures("commit_time_failure")
def test_failed_commit_is_an_error_response(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    response = client.post("/api/v1/todos", json={"title": REJECT_AT_COMMIT}, headers=user.headers)
    assert response.status_code == 409
    assert "rejected" not in response.text  # the database's message stays server-side
    with db_engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Todo)) == 0
    # The same request without the trigger condition commits fine.
    assert (
        client.post("/api/v1/todos", json={"title": "ok"}, headers=user.headers).status_code == 201
    )


def _failure(email: str) -> object:
    return insert(LoginFailure).values(id=uuid.uuid4(), email=email, failed_at=utcnow())


def _stored(engine: Engine, *emails: str) -> set[str]:
    with engine.connect() as connection:
        query = select(LoginFailure.email).where(LoginFailure.email.in_(emails))
        return set(connection.scalars(query))


def _run(settings: Settings, work: Callable[[UnitOfWork], Awaitable[None]]) -> None:
    async def main() -> None:
        engine = create_db_engine(settings)
        try:
            async with unit_of_work(engine) as db:
                await work(db)
        finally:
            await engine.dispose()

    asyncio.run(main())


@pytest.mark.usefixtures("client")  # a migrated database, emptied afterwards
def test_a_statement_commits_on_its_own(settings: Settings, db_engine: Engine) -> None:
    async def work(db: UnitOfWork) -> None:
        await db.execute(_failure("one@example.com"))
        # Visible to everyone else at once, while this unit of work still holds its connection.
        assert _stored(db_engine, "one@example.com") == {"one@example.com"}

    _run(settings, work)


@pytest.mark.usefixtures("client")
def test_a_second_write_outside_a_transaction_is_refused(
    settings: Settings, db_engine: Engine
) -> None:
    async def work(db: UnitOfWork) -> None:
        await db.execute(_failure("first@example.com"))
        with pytest.raises(RuntimeError, match=r"db\.transaction"):
            await db.execute(_failure("second@example.com"))

    _run(settings, work)
    assert _stored(db_engine, "first@example.com", "second@example.com") == {"first@example.com"}


@pytest.mark.usefixtures("client")
def test_a_transaction_commits_together_or_not_at_all(
    settings: Settings, db_engine: Engine
) -> None:
    async def fail_halfway(db: UnitOfWork) -> None:
        async with db.transaction():
            await db.execute(_failure("a@example.com"))
            await db.execute(_failure("b@example.com"))
            raise ValueError("halfway")

    async def work(db: UnitOfWork) -> None:
        with pytest.raises(ValueError, match="halfway"):
            await fail_halfway(db)
        async with db.transaction():
            await db.execute(_failure("c@example.com"))
            await db.execute(_failure("d@example.com"))
            assert _stored(db_engine, "c@example.com") == set()  # not before the block ends

    _run(settings, work)
    emails = ("a@example.com", "b@example.com", "c@example.com", "d@example.com")
    assert _stored(db_engine, *emails) == {"c@example.com", "d@example.com"}


class _Recorded(AppError):
    status_code = 401
    persist_changes = True


@pytest.mark.usefixtures("client")
def test_an_error_that_persists_its_changes_commits_them(
    settings: Settings, db_engine: Engine
) -> None:
    async def refuse(db: UnitOfWork) -> None:
        async with db.transaction():
            await db.execute(_failure("kept@example.com"))
            raise _Recorded()

    async def work(db: UnitOfWork) -> None:
        with pytest.raises(_Recorded):
            await refuse(db)

    _run(settings, work)
    assert _stored(db_engine, "kept@example.com") == {"kept@example.com"}
