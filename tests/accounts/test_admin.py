"""Superusers: the first one at startup, GET /api/v1/users and PATCH /api/v1/users/{id}."""

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from pydantic import SecretStr
from sqlalchemy import Engine, func, select

from app.accounts.models import User
from app.config import Settings
from app.main import create_app
from tests.accounts.helpers import make_superuser
from tests.conftest import PASSWORD, ApiUser, login, make_user

USERS = "/api/v1/users"
ME = "/api/v1/users/me"
TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/refresh"
REGISTER = "/api/v1/auth/register"
USER_KEYS = {"id", "email", "full_name", "is_active", "is_superuser", "created_at"}
ROOT_EMAIL = "root@example.com"
ROOT_PASSWORD = "root-password-1"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def with_first_superuser(settings: Settings, **changes: Any) -> Settings:
    # model_copy does not validate, so the password goes in as the SecretStr the field holds.
    return settings.model_copy(
        update={
            "first_superuser_email": ROOT_EMAIL,
            "first_superuser_password": SecretStr(ROOT_PASSWORD),
            **changes,
        }
    )


def stored(db_engine: Engine, email: str) -> list[tuple[bool, bool, str | None]]:
    with db_engine.connect() as connection:
        rows = connection.execute(
            select(User.is_superuser, User.is_active, User.full_name).where(User.email == email)
        ).all()
    return [(row.is_superuser, row.is_active, row.full_name) for row in rows]


def count_users(db_engine: Engine) -> int:
    with db_engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(User)) or 0


def assert_user(body: Any) -> None:
    assert isinstance(body, dict)
    assert set(body) == USER_KEYS
    uuid.UUID(body["id"])


def assert_unauthorized(response: Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert set(response.json()) == {"detail"}


def assert_forbidden(response: Response) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str)
    assert body["detail"]


def patch_user(client: TestClient, admin: ApiUser, user_id: str, body: Any) -> Response:
    return client.patch(f"/api/v1/users/{user_id}", json=body, headers=admin.headers)


# --- the first superuser, created at startup ---


def test_first_superuser_is_created_at_startup(
    client: TestClient, settings: Settings, db_engine: Engine
) -> None:
    with TestClient(create_app(with_first_superuser(settings))) as root_client:
        assert stored(db_engine, ROOT_EMAIL) == [(True, True, None)]
        tokens = login(root_client, ROOT_EMAIL, ROOT_PASSWORD)
        me = root_client.get(ME, headers=bearer(str(tokens["access_token"])))
        assert me.status_code == 200
        assert me.json()["email"] == ROOT_EMAIL
        assert me.json()["is_superuser"] is True
        listing = root_client.get(USERS, headers=bearer(str(tokens["access_token"])))
        assert listing.status_code == 200
        assert [item["email"] for item in listing.json()["items"]] == [ROOT_EMAIL]


def test_starting_twice_creates_no_duplicate(
    client: TestClient, settings: Settings, db_engine: Engine
) -> None:
    root_settings = with_first_superuser(settings)
    for _ in range(2):
        with TestClient(create_app(root_settings)) as root_client:
            assert login(root_client, ROOT_EMAIL, ROOT_PASSWORD)["access_token"]
    assert stored(db_engine, ROOT_EMAIL) == [(True, True, None)]
    assert count_users(db_engine) == 1


def test_an_existing_normal_user_is_left_as_is(
    client: TestClient, settings: Settings, db_engine: Engine
) -> None:
    existing = make_user(client, email=ROOT_EMAIL)
    with TestClient(create_app(with_first_superuser(settings))) as root_client:
        assert stored(db_engine, ROOT_EMAIL) == [(False, True, None)]
        assert login(root_client, ROOT_EMAIL, PASSWORD)["access_token"]
        wrong = root_client.post(TOKEN, data={"username": ROOT_EMAIL, "password": ROOT_PASSWORD})
        assert wrong.status_code == 401
        assert_forbidden(root_client.get(USERS, headers=existing.headers))
    assert count_users(db_engine) == 1


def test_signup_disabled_still_creates_the_first_superuser(
    client: TestClient, settings: Settings, db_engine: Engine
) -> None:
    closed = with_first_superuser(settings, allow_signup=False)
    with TestClient(create_app(closed)) as root_client:
        response = root_client.post(
            REGISTER, json={"email": "late@example.com", "password": PASSWORD}
        )
        assert_forbidden(response)
        tokens = login(root_client, ROOT_EMAIL, ROOT_PASSWORD)
        listing = root_client.get(USERS, headers=bearer(str(tokens["access_token"])))
        assert listing.status_code == 200
        assert [item["email"] for item in listing.json()["items"]] == [ROOT_EMAIL]
    assert stored(db_engine, ROOT_EMAIL) == [(True, True, None)]
    assert stored(db_engine, "late@example.com") == []


# --- GET /api/v1/users ---


def test_list_requires_a_token(client: TestClient) -> None:
    assert_unauthorized(client.get(USERS))


def test_list_by_a_normal_user_is_403(client: TestClient, user: ApiUser) -> None:
    assert_forbidden(client.get(USERS, headers=user.headers))


def test_list_by_a_superuser(client: TestClient, db_engine: Engine, user: ApiUser) -> None:
    admin = make_superuser(client, db_engine)
    response = client.get(USERS, headers=admin.headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items", "next_cursor"}
    assert body["next_cursor"] is None
    for item in body["items"]:
        assert_user(item)
    by_id = {item["id"]: item for item in body["items"]}
    assert set(by_id) == {user.id, admin.id}
    assert by_id[admin.id]["is_superuser"] is True
    assert by_id[user.id]["is_superuser"] is False
    assert by_id[user.id]["email"] == user.email
    assert PASSWORD not in response.text
    assert "$2b$" not in response.text


def test_list_is_oldest_first_and_pages_walk_every_user_once(
    client: TestClient, db_engine: Engine
) -> None:
    admin = make_superuser(client, db_engine)
    created = [admin.id] + [make_user(client).id for _ in range(6)]

    full = client.get(USERS, params={"limit": 100}, headers=admin.headers).json()
    assert [item["id"] for item in full["items"]] == created
    assert full["next_cursor"] is None

    walked: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    pages = 0
    while True:
        response = client.get(USERS, params=params, headers=admin.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        walked += [item["id"] for item in page["items"]]
        pages += 1
        if page["next_cursor"] is None:
            break
        assert pages < 10
        params = {"limit": 2, "cursor": page["next_cursor"]}
    assert walked == created
    assert pages == 4


def test_default_limit_is_20(client: TestClient, db_engine: Engine) -> None:
    admin = make_superuser(client, db_engine)
    for _ in range(20):
        make_user(client)
    page = client.get(USERS, headers=admin.headers).json()
    assert len(page["items"]) == 20
    assert page["next_cursor"] is not None
    rest = client.get(USERS, params={"cursor": page["next_cursor"]}, headers=admin.headers)
    assert len(rest.json()["items"]) == 1
    assert rest.json()["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5"])
def test_list_limit_out_of_range_is_422(client: TestClient, db_engine: Engine, limit: str) -> None:
    admin = make_superuser(client, db_engine)
    response = client.get(USERS, params={"limit": limit}, headers=admin.headers)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


@pytest.mark.parametrize(
    "cursor", ["garbage", "e30", "eyJmIjoidXNlcnMiLCJ2IjoieCIsImlkIjoiMSJ9", "!!!", "x" * 3000]
)
def test_list_bad_cursor_is_422(client: TestClient, db_engine: Engine, cursor: str) -> None:
    admin = make_superuser(client, db_engine)
    response = client.get(USERS, params={"cursor": cursor}, headers=admin.headers)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)


def test_a_todos_cursor_is_a_bad_users_cursor(client: TestClient, db_engine: Engine) -> None:
    admin = make_superuser(client, db_engine)
    for number in range(3):
        client.post("/api/v1/todos", json={"title": f"t{number}"}, headers=admin.headers)
    todo_cursor = client.get("/api/v1/todos", params={"limit": 1}, headers=admin.headers).json()[
        "next_cursor"
    ]
    assert todo_cursor
    response = client.get(USERS, params={"cursor": todo_cursor}, headers=admin.headers)
    assert response.status_code == 422


# --- PATCH /api/v1/users/{id} ---


def test_patch_by_a_normal_user_is_403_and_changes_nothing(
    client: TestClient, db_engine: Engine, user: ApiUser, other_user: ApiUser
) -> None:
    for target in (other_user.id, user.id):
        for body in ({"is_superuser": True}, {"full_name": "Mallory"}, {"is_active": False}):
            assert_forbidden(patch_user(client, user, target, body))
    assert stored(db_engine, user.email) == [(False, True, None)]
    assert stored(db_engine, other_user.email) == [(False, True, None)]
    assert_forbidden(client.get(USERS, headers=user.headers))


def test_patch_requires_a_token(client: TestClient, user: ApiUser, db_engine: Engine) -> None:
    assert_unauthorized(client.patch(f"/api/v1/users/{user.id}", json={"full_name": "X"}))
    assert stored(db_engine, user.email) == [(False, True, None)]


def test_patch_unknown_id_is_404(client: TestClient, db_engine: Engine) -> None:
    admin = make_superuser(client, db_engine)
    response = patch_user(client, admin, str(uuid.uuid4()), {"full_name": "Nobody"})
    assert response.status_code == 404
    assert set(response.json()) == {"detail"}


@pytest.mark.parametrize("user_id", ["not-a-uuid", "1", "me2", "00000000-0000-0000-0000"])
def test_patch_non_uuid_id_is_422(client: TestClient, db_engine: Engine, user_id: str) -> None:
    admin = make_superuser(client, db_engine)
    response = patch_user(client, admin, user_id, {"full_name": "Nobody"})
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


def test_superuser_sets_full_name(client: TestClient, db_engine: Engine, user: ApiUser) -> None:
    admin = make_superuser(client, db_engine)
    response = patch_user(client, admin, user.id, {"full_name": "Ada Lovelace"})
    assert response.status_code == 200
    body = response.json()
    assert_user(body)
    assert body["id"] == user.id
    assert body["full_name"] == "Ada Lovelace"
    assert body["is_active"] is True
    assert body["is_superuser"] is False
    assert client.get(ME, headers=user.headers).json()["full_name"] == "Ada Lovelace"
    assert stored(db_engine, user.email) == [(False, True, "Ada Lovelace")]


def test_superuser_promotes_and_demotes(
    client: TestClient, db_engine: Engine, user: ApiUser
) -> None:
    admin = make_superuser(client, db_engine)
    assert_forbidden(client.get(USERS, headers=user.headers))

    promoted = patch_user(client, admin, user.id, {"is_superuser": True})
    assert promoted.status_code == 200
    assert promoted.json()["is_superuser"] is True
    assert client.get(USERS, headers=user.headers).status_code == 200
    fresh = login(client, user.email)
    assert client.get(USERS, headers=bearer(str(fresh["access_token"]))).status_code == 200

    demoted = patch_user(client, admin, user.id, {"is_superuser": False})
    assert demoted.status_code == 200
    assert demoted.json()["is_superuser"] is False
    assert_forbidden(client.get(USERS, headers=user.headers))
    assert_forbidden(client.get(USERS, headers=bearer(str(fresh["access_token"]))))
    assert stored(db_engine, user.email) == [(False, True, None)]


def test_deactivation_ends_every_login_at_once(
    client: TestClient, db_engine: Engine, user: ApiUser, other_user: ApiUser
) -> None:
    admin = make_superuser(client, db_engine)
    assert client.get(ME, headers=user.headers).status_code == 200

    response = patch_user(client, admin, user.id, {"is_active": False})
    assert response.status_code == 200
    assert response.json()["is_active"] is False

    assert_unauthorized(client.get(ME, headers=user.headers))
    assert_unauthorized(client.get("/api/v1/todos", headers=user.headers))
    assert_unauthorized(client.post(REFRESH, json={"refresh_token": user.refresh_token}))
    refused = client.post(TOKEN, data={"username": user.email, "password": PASSWORD})
    assert refused.status_code == 403
    assert refused.json() == {"detail": "Inactive user"}
    # Nobody else is affected.
    assert client.get(ME, headers=other_user.headers).status_code == 200
    assert client.get(USERS, headers=admin.headers).status_code == 200


def test_reactivation_allows_a_fresh_login(
    client: TestClient, db_engine: Engine, user: ApiUser
) -> None:
    admin = make_superuser(client, db_engine)
    assert patch_user(client, admin, user.id, {"is_active": False}).status_code == 200
    response = patch_user(client, admin, user.id, {"is_active": True})
    assert response.status_code == 200
    assert response.json()["is_active"] is True

    tokens = login(client, user.email)
    me = client.get(ME, headers=bearer(str(tokens["access_token"])))
    assert me.status_code == 200
    assert me.json()["is_active"] is True
    refreshed = client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    # The login that was ended by the deactivation stays ended.
    assert_unauthorized(client.post(REFRESH, json={"refresh_token": user.refresh_token}))


@pytest.mark.parametrize(
    "body",
    [
        {"is_active": None},
        {"is_active": "yes"},
        {"is_active": "false"},
        {"is_active": 0},
        {"is_superuser": None},
        {"is_superuser": "true"},
        {"is_superuser": 1},
        {"full_name": 42},
        {"full_name": "x" * 201},
    ],
)
def test_patch_invalid_values_are_422_and_change_nothing(
    client: TestClient, db_engine: Engine, user: ApiUser, body: dict[str, Any]
) -> None:
    admin = make_superuser(client, db_engine)
    response = patch_user(client, admin, user.id, body)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)
    assert stored(db_engine, user.email) == [(False, True, None)]
    assert client.get(ME, headers=user.headers).status_code == 200


def test_patch_with_an_empty_body_changes_nothing(
    client: TestClient, db_engine: Engine, user: ApiUser
) -> None:
    admin = make_superuser(client, db_engine)
    response = patch_user(client, admin, user.id, {})
    assert response.status_code == 200
    assert_user(response.json())
    assert stored(db_engine, user.email) == [(False, True, None)]
