"""The request's SQLAlchemy session is the unit of work: every commit happens before the
response is sent (a failed commit is never a 2xx); a statement commits on its own; work in
transaction(session) commits together or not at all, in every service that needs it; a second
write outside a transaction is refused, so the mistake shows in the first test that makes it."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import LoginFailure, RefreshToken, User
from app.config import Settings
from app.database import create_sessionmaker, transaction, utcnow
from app.engines import AUTOCOMMIT, create_db_engine
from app.idempotency.models import IdempotencyKey
from app.todos.models import Todo
from tests.conftest import PASSWORD, ApiUser, empty_tables, make_user

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


def _failure(email: str) -> Any:
    return insert(LoginFailure).values(id=uuid.uuid4(), email=email, failed_at=utcnow())


def _stored(engine: Engine, *emails: str) -> set[str]:
    with engine.connect() as connection:
        query = select(LoginFailure.email).where(LoginFailure.email.in_(emails))
        return set(connection.scalars(query))


def _run(settings: Settings, work: Callable[[AsyncSession], Awaitable[None]]) -> None:
    async def main() -> None:
        engine = create_db_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session:
                await work(session)
        finally:
            await engine.dispose()

    asyncio.run(main())


@pytest.mark.usefixtures("client")  # a migrated database, emptied afterwards
def test_a_statement_commits_on_its_own(settings: Settings, db_engine: Engine) -> None:
    async def work(session: AsyncSession) -> None:
        await session.execute(_failure("one@example.com"))
        # Visible to everyone else at once, while this session still holds its connection.
        assert _stored(db_engine, "one@example.com") == {"one@example.com"}

    _run(settings, work)


@pytest.mark.usefixtures("client")
def test_a_second_write_outside_a_transaction_is_refused(
    settings: Settings, db_engine: Engine
) -> None:
    async def work(session: AsyncSession) -> None:
        await session.execute(_failure("first@example.com"))
        with pytest.raises(RuntimeError, match=r"transaction\(session\)"):
            await session.execute(_failure("second@example.com"))

    _run(settings, work)
    assert _stored(db_engine, "first@example.com", "second@example.com") == {"first@example.com"}


@pytest.mark.usefixtures("client")
def test_session_begin_alone_is_not_a_transaction_here(
    settings: Settings, db_engine: Engine
) -> None:
    """The request engine autocommits: session.begin() without transaction()'s options would
    commit each statement by itself, so two writes in it are refused too."""

    async def work(session: AsyncSession) -> None:
        async with session.begin():
            await session.execute(_failure("alone@example.com"))
            with pytest.raises(RuntimeError, match="second write"):
                await session.execute(_failure("again@example.com"))

    _run(settings, work)
    assert _stored(db_engine, "alone@example.com", "again@example.com") == {"alone@example.com"}


@pytest.mark.usefixtures("client")
def test_flushing_two_entities_outside_a_transaction_is_refused(
    settings: Settings, db_engine: Engine
) -> None:
    async def work(session: AsyncSession) -> None:
        session.add_all(
            [
                LoginFailure(email="flush-a@example.com", failed_at=utcnow()),
                LoginFailure(email="flush-b@example.com", failed_at=utcnow()),
            ]
        )
        with pytest.raises(RuntimeError, match="second write"):
            await session.flush()

    _run(settings, work)
    assert _stored(db_engine, "flush-a@example.com", "flush-b@example.com") == set()


@pytest.mark.usefixtures("client")
def test_a_transaction_commits_together_or_not_at_all(
    settings: Settings, db_engine: Engine
) -> None:
    async def fail_halfway(session: AsyncSession) -> None:
        async with transaction(session):
            await session.execute(_failure("a@example.com"))
            await session.execute(_failure("b@example.com"))
            raise ValueError("halfway")

    async def work(session: AsyncSession) -> None:
        with pytest.raises(ValueError, match="halfway"):
            await fail_halfway(session)
        async with transaction(session):
            await session.execute(_failure("c@example.com"))
            await session.execute(_failure("d@example.com"))
            assert _stored(db_engine, "c@example.com") == set()  # not before the block ends
        # Back in autocommit mode afterwards: one more write is fine.
        await session.execute(_failure("e@example.com"))

    _run(settings, work)
    emails = ("a@example.com", "b@example.com", "c@example.com", "d@example.com", "e@example.com")
    assert _stored(db_engine, *emails) == {"c@example.com", "d@example.com", "e@example.com"}


# --- Every service that writes more than once is all-or-nothing --------------------------------


class InjectedFailure(Exception):
    pass


@pytest.fixture
def failing_client(app: FastAPI, db_engine: Engine) -> Iterator[TestClient]:
    """A client whose server answers a crash with the contract's 500 (instead of raising)."""
    try:
        with TestClient(app, raise_server_exceptions=False) as test_client:
            yield test_client
    finally:
        empty_tables(db_engine)


@pytest.fixture
def fail_after_first_write(app: FastAPI) -> Iterator[None]:
    """From now on, the first write inside a transaction runs, and then the request fails."""
    engine = app.state.engine.sync_engine

    def after(conn: Any, _cursor: Any, _stmt: Any, _params: Any, context: Any, _many: Any) -> None:
        writes = context.isinsert or context.isupdate or context.isdelete
        if writes and not conn.get_execution_options().get(AUTOCOMMIT):
            raise InjectedFailure("after the first write")

    event.listen(engine, "after_cursor_execute", after)
    try:
        yield
    finally:
        event.remove(engine, "after_cursor_execute", after)


def _count(engine: Engine, model: Any, *where: Any) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _arm(request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("fail_after_first_write")


def test_login_is_all_or_nothing(
    failing_client: TestClient, db_engine: Engine, request: pytest.FixtureRequest
) -> None:
    user = make_user(failing_client)
    form = {"username": user.email, "password": "wrong-password"}
    assert failing_client.post("/api/v1/auth/token", data=form).status_code == 401
    tokens_before = _count(db_engine, RefreshToken)
    _arm(request)  # the successful login's first write clears the failure; then it fails
    form["password"] = PASSWORD
    assert failing_client.post("/api/v1/auth/token", data=form).status_code == 500
    assert _count(db_engine, LoginFailure, LoginFailure.email == user.email) == 1
    assert _count(db_engine, RefreshToken) == tokens_before


def test_refresh_rotation_is_all_or_nothing(
    failing_client: TestClient, db_engine: Engine, request: pytest.FixtureRequest
) -> None:
    user = make_user(failing_client)
    tokens_before = _count(db_engine, RefreshToken)
    _arm(request)  # marks the token rotated, then fails before the new one is stored
    body = {"refresh_token": user.refresh_token}
    assert failing_client.post("/api/v1/auth/refresh", json=body).status_code == 500
    assert _count(db_engine, RefreshToken) == tokens_before
    assert _count(db_engine, RefreshToken, RefreshToken.rotated_at.is_not(None)) == 0


def test_idempotent_create_is_all_or_nothing(
    failing_client: TestClient, db_engine: Engine, request: pytest.FixtureRequest
) -> None:
    user = make_user(failing_client)
    _arm(request)  # inserts the todo, then fails before the key is remembered
    headers = {**user.headers, "Idempotency-Key": "k-1"}
    response = failing_client.post("/api/v1/todos", json={"title": "once"}, headers=headers)
    assert response.status_code == 500
    assert _count(db_engine, Todo) == 0
    assert _count(db_engine, IdempotencyKey) == 0


def test_password_change_is_all_or_nothing(
    failing_client: TestClient, db_engine: Engine, request: pytest.FixtureRequest
) -> None:
    user = make_user(failing_client)
    _arm(request)  # stores the new hash, then fails before the logins are revoked
    body = {"current_password": PASSWORD, "new_password": "another-good-password"}
    response = failing_client.post("/api/v1/users/me/password", json=body, headers=user.headers)
    assert response.status_code == 500
    assert _count(db_engine, RefreshToken, RefreshToken.revoked_at.is_not(None)) == 0
    unchanged = (User.email == user.email, User.password_changed_at.is_(None))
    assert _count(db_engine, User, *unchanged) == 1


def test_admin_deactivation_is_all_or_nothing(
    failing_client: TestClient, db_engine: Engine, request: pytest.FixtureRequest
) -> None:
    admin = make_user(failing_client)
    with db_engine.begin() as connection:
        connection.execute(
            User.__table__.update().where(User.email == admin.email).values(is_superuser=True)
        )
    target = make_user(failing_client)
    _arm(request)  # revokes the target's logins, then fails before is_active is stored
    response = failing_client.patch(
        f"/api/v1/users/{target.id}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 500
    assert _count(db_engine, RefreshToken, RefreshToken.revoked_at.is_not(None)) == 0
    assert _count(db_engine, User, User.email == target.email, User.is_active.is_(True)) == 1
