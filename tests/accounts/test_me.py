"""/api/v1/users/me: read, change and delete your own account."""

import hashlib
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.orm import InstrumentedAttribute

from app.accounts.models import RefreshToken, User
from app.config import Settings
from app.main import create_app
from app.todos.models import Todo
from tests.conftest import PASSWORD, ApiUser, assert_bearer_401, login

ME = "/api/v1/users/me"
TOKEN = "/api/v1/auth/token"
USER_KEYS = {"id", "email", "full_name", "is_active", "is_superuser", "created_at"}


def count_rows(db_engine: Engine, column: InstrumentedAttribute[uuid.UUID], user_id: str) -> int:
    with db_engine.connect() as connection:
        query = select(func.count()).where(column == uuid.UUID(user_id))
        return connection.scalar(query) or 0


def stored_user(db_engine: Engine, user_id: str) -> tuple[str, str | None] | None:
    with db_engine.connect() as connection:
        row = connection.execute(
            select(User.email, User.full_name).where(User.id == uuid.UUID(user_id))
        ).one_or_none()
    return None if row is None else (row.email, row.full_name)


def delete_me(client: TestClient, user: ApiUser) -> Response:
    body = {"current_password": user.password}
    return client.request("DELETE", ME, json=body, headers=user.headers)


_WAITING_ON_LOCKS = text(
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
)


def wait_until_blocked(db_engine: Engine, pending: Future[Response], timeout: float = 15) -> None:
    """Return once `pending` waits on a lock another transaction holds, and has no answer.

    PostgreSQL shows the waiting backend in pg_stat_activity. SQLite shows nothing: there the
    request must still be unanswered after a second, which it is only while its write waits
    out the busy timeout behind the other connection's write transaction."""
    if db_engine.dialect.name != "postgresql":
        time.sleep(1)
    else:
        deadline = time.monotonic() + timeout
        with db_engine.connect() as observer:
            while not observer.scalar(_WAITING_ON_LOCKS):
                assert not pending.done(), f"answered without waiting: {pending.result().text}"
                assert time.monotonic() < deadline, "the request never waited on the lock"
                time.sleep(0.02)
                observer.rollback()  # a fresh snapshot of pg_stat_activity each time
    assert not pending.done(), f"answered without waiting: {pending.result().text}"


def create_todos(client: TestClient, user: ApiUser, count: int) -> None:
    for number in range(count):
        response = client.post(
            "/api/v1/todos", json={"title": f"todo {number}"}, headers=user.headers
        )
        assert response.status_code == 201, response.text


def test_get_me_returns_the_user_without_secrets(client: TestClient, user: ApiUser) -> None:
    response = client.get(ME, headers=user.headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == USER_KEYS
    assert body["id"] == user.id
    assert body["email"] == user.email
    assert body["full_name"] is None
    assert body["is_active"] is True
    assert body["is_superuser"] is False
    assert PASSWORD not in response.text
    assert "$2b$" not in response.text


def test_patch_full_name(client: TestClient, user: ApiUser, db_engine: Engine) -> None:
    response = client.patch(ME, json={"full_name": "Grace Hopper"}, headers=user.headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == USER_KEYS
    assert body["full_name"] == "Grace Hopper"
    assert body["email"] == user.email
    assert client.get(ME, headers=user.headers).json()["full_name"] == "Grace Hopper"
    assert stored_user(db_engine, user.id) == (user.email, "Grace Hopper")


def test_patch_full_name_over_200_chars_is_422(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    response = client.patch(ME, json={"full_name": "x" * 201}, headers=user.headers)
    assert response.status_code == 422
    assert stored_user(db_engine, user.id) == (user.email, None)


def test_patch_email_is_stored_lower_case_and_moves_the_login(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    body = {"email": "New.Address@Example.COM", "current_password": PASSWORD}
    response = client.patch(ME, json=body, headers=user.headers)
    assert response.status_code == 200
    assert response.json()["email"] == "new.address@example.com"
    assert stored_user(db_engine, user.id) == ("new.address@example.com", None)

    tokens = login(client, "NEW.address@example.com")
    me = client.get(ME, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.json()["id"] == user.id
    old = client.post(TOKEN, data={"username": user.email, "password": PASSWORD})
    assert old.status_code == 401
    assert old.json() == {"detail": "Incorrect email or password"}


def test_patch_email_to_the_same_address_is_fine(client: TestClient, user: ApiUser) -> None:
    body = {"email": user.email.upper(), "current_password": PASSWORD}
    response = client.patch(ME, json=body, headers=user.headers)
    assert response.status_code == 200
    assert response.json()["email"] == user.email


@pytest.mark.parametrize("transform", ["lower", "upper", "title"])
def test_patch_email_to_another_users_is_409_and_changes_nothing(
    client: TestClient, user: ApiUser, other_user: ApiUser, db_engine: Engine, transform: str
) -> None:
    taken = getattr(other_user.email, transform)()
    response = client.patch(
        ME,
        json={"email": taken, "full_name": "Should Not Stick", "current_password": PASSWORD},
        headers=user.headers,
    )
    assert response.status_code == 409
    assert set(response.json()) == {"detail"}
    assert isinstance(response.json()["detail"], str)

    assert stored_user(db_engine, user.id) == (user.email, None)
    assert stored_user(db_engine, other_user.id) == (other_user.email, None)
    assert client.get(ME, headers=user.headers).json()["email"] == user.email
    login(client, user.email)
    login(client, other_user.email)


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "", "two@@example.com"])
def test_patch_invalid_email_is_422(
    client: TestClient, user: ApiUser, db_engine: Engine, email: str
) -> None:
    response = client.patch(ME, json={"email": email}, headers=user.headers)
    assert response.status_code == 422
    assert any(error["loc"][:2] == ["body", "email"] for error in response.json()["detail"])
    assert stored_user(db_engine, user.id) == (user.email, None)


def test_patch_email_null_is_422(client: TestClient, user: ApiUser, db_engine: Engine) -> None:
    response = client.patch(ME, json={"email": None}, headers=user.headers)
    assert response.status_code == 422
    assert any(error["loc"][:2] == ["body", "email"] for error in response.json()["detail"])
    assert stored_user(db_engine, user.id) == (user.email, None)


def test_delete_me_removes_the_user_their_todos_and_tokens(
    client: TestClient, user: ApiUser, other_user: ApiUser, db_engine: Engine
) -> None:
    create_todos(client, user, 3)
    create_todos(client, other_user, 2)
    login(client, user.email)  # a second refresh token for the user
    assert count_rows(db_engine, Todo.owner_id, user.id) == 3
    assert count_rows(db_engine, RefreshToken.user_id, user.id) == 2
    assert count_rows(db_engine, Todo.owner_id, other_user.id) == 2
    assert count_rows(db_engine, RefreshToken.user_id, other_user.id) == 1

    response = delete_me(client, user)
    assert response.status_code == 204
    assert response.content == b""

    old_token = client.get(ME, headers=user.headers)
    assert old_token.status_code == 401
    assert old_token.headers["www-authenticate"] == "Bearer"
    relogin = client.post(TOKEN, data={"username": user.email, "password": PASSWORD})
    assert relogin.status_code == 401
    assert relogin.json() == {"detail": "Incorrect email or password"}

    assert stored_user(db_engine, user.id) is None
    assert count_rows(db_engine, Todo.owner_id, user.id) == 0
    assert count_rows(db_engine, RefreshToken.user_id, user.id) == 0

    # The other user is untouched.
    assert stored_user(db_engine, other_user.id) == (other_user.email, None)
    assert count_rows(db_engine, Todo.owner_id, other_user.id) == 2
    assert count_rows(db_engine, RefreshToken.user_id, other_user.id) == 1
    assert client.get(ME, headers=other_user.headers).json()["id"] == other_user.id
    listed = client.get("/api/v1/todos", headers=other_user.headers)
    assert listed.status_code == 200
    assert len(listed.json()["items"]) == 2


def test_deleted_email_can_register_again(client: TestClient, user: ApiUser) -> None:
    assert delete_me(client, user).status_code == 204
    response = client.post(
        "/api/v1/auth/register", json={"email": user.email, "password": PASSWORD}
    )
    assert response.status_code == 201
    assert response.json()["id"] != user.id
    assert client.get(ME, headers=user.headers).status_code == 401


def test_update_racing_the_deletion_of_the_user_is_401(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    """The token's user is read (it exists), then deleted before the UPDATE runs: the token
    belongs to a deleted user, a 401, not a 404 about some user. The deletion holds its lock
    until the PATCH waits behind it, so the interleaving is the same on every run."""
    with db_engine.connect() as connection, ThreadPoolExecutor(1) as pool:
        transaction = connection.begin()
        connection.execute(delete(User).where(User.id == uuid.UUID(user.id)))
        patched = pool.submit(client.patch, ME, json={"full_name": "Racer"}, headers=user.headers)
        wait_until_blocked(db_engine, patched)  # it raced: it waits behind the deletion
        transaction.commit()
        response = patched.result(timeout=30)

    assert_bearer_401(response)


REFRESH = "/api/v1/auth/refresh"
# The refresh token's row, held by the test: a refresh of it stops at marking it exchanged,
# with its login's row locked already.
_HOLD_TOKEN = text("SELECT id FROM refresh_tokens WHERE token_hash = :token_hash FOR UPDATE")
# Lock waits as long as the test needs on a loaded machine: only a deadlock may end one.
PATIENT = {"lock_timeout_ms": 60_000, "db_statement_timeout_ms": 60_000}
# The user's logins, held by the test: a deletion stops at them, a refresh queues behind it.
_HOLD_LOGINS = text("SELECT id FROM logins WHERE user_id = :user_id FOR UPDATE")


def wait_until_waiting(db_engine: Engine, waiters: int, pending: Future[Response]) -> None:
    """Return once `waiters` transactions wait on locks (PostgreSQL), `pending` among them."""
    deadline = time.monotonic() + 15
    while True:
        # A transaction of its own each time: one keeps its first view of pg_stat_activity.
        with db_engine.connect() as observer:
            if observer.scalar(_WAITING_ON_LOCKS) >= waiters:
                return
        assert not pending.done(), f"answered without waiting: {pending.result().text}"
        assert time.monotonic() < deadline, "the request never waited on a lock"


def test_deleting_the_account_while_it_refreshes_neither_deadlocks_nor_fails(
    client: TestClient, user: ApiUser, db_engine: Engine, settings: Settings
) -> None:
    """A refresh holds its login's row and will insert a token (whose foreign key check takes
    the user's row in share mode) while the account's deletion starts. A deletion that locks
    the user's row first and the login's after waits for the refresh while the refresh waits
    for it: a deadlock, one of them a 503. On PostgreSQL the test holds the token's row so the
    refresh stops there, and lets go once the deletion waits too; SQLite runs one at a time."""
    postgres = db_engine.dialect.name == "postgresql"
    patient = create_app(settings.model_copy(update=PATIENT))
    with (
        TestClient(patient) as racer,
        db_engine.connect() as holder,
        ThreadPoolExecutor(2) as pool,
    ):
        transaction = holder.begin()
        if postgres:
            digest = hashlib.sha256(user.refresh_token.encode()).hexdigest()
            assert holder.execute(_HOLD_TOKEN, {"token_hash": digest}).first() is not None
        refreshed = pool.submit(racer.post, REFRESH, json={"refresh_token": user.refresh_token})
        if postgres:
            wait_until_waiting(db_engine, 1, refreshed)
        else:
            refreshed.result(timeout=30)
        deleted = pool.submit(delete_me, racer, user)
        if postgres:
            wait_until_waiting(db_engine, 2, deleted)
        transaction.commit()
        refresh_response = refreshed.result(timeout=60)
        delete_response = deleted.result(timeout=60)

    assert delete_response.status_code == 204, delete_response.text
    # The refresh went first (its new pair) or after the deletion (401); it never failed.
    assert refresh_response.status_code in {200, 401}, refresh_response.text
    if refresh_response.status_code == 200:
        late = refresh_response.json()["refresh_token"]
        assert_bearer_401(client.post(REFRESH, json={"refresh_token": late}))
    else:
        assert_bearer_401(refresh_response)
    assert_bearer_401(client.post(REFRESH, json={"refresh_token": user.refresh_token}))
    assert stored_user(db_engine, user.id) is None
    assert count_rows(db_engine, RefreshToken.user_id, user.id) == 0


def test_a_refresh_behind_the_deletion_of_its_account_is_401(
    client: TestClient, user: ApiUser, db_engine: Engine, settings: Settings
) -> None:
    """The deletion first: it waits for the login's row (the test holds it on PostgreSQL),
    the refresh queues behind it, and finds neither login nor token once it is let go."""
    postgres = db_engine.dialect.name == "postgresql"
    patient = create_app(settings.model_copy(update=PATIENT))
    with (
        TestClient(patient) as racer,
        db_engine.connect() as holder,
        ThreadPoolExecutor(2) as pool,
    ):
        transaction = holder.begin()
        if postgres:
            holder.execute(_HOLD_LOGINS, {"user_id": uuid.UUID(user.id)})
        deleted = pool.submit(delete_me, racer, user)
        if postgres:
            wait_until_waiting(db_engine, 1, deleted)
        else:
            deleted.result(timeout=30)
        refreshed = pool.submit(racer.post, REFRESH, json={"refresh_token": user.refresh_token})
        if postgres:
            wait_until_waiting(db_engine, 2, refreshed)
        transaction.commit()
        delete_response = deleted.result(timeout=60)
        refresh_response = refreshed.result(timeout=60)

    assert delete_response.status_code == 204, delete_response.text
    assert_bearer_401(refresh_response)
    assert stored_user(db_engine, user.id) is None
    assert count_rows(db_engine, RefreshToken.user_id, user.id) == 0
