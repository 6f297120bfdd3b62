"""POST /api/v1/users/me/password: the change itself, its refusals, and every old token dying."""

import json
import time

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from tests.conftest import PASSWORD, ApiUser, assert_bearer_401, login

CHANGE = "/api/v1/users/me/password"
TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/refresh"
PROTECTED = ["/api/v1/users/me", "/api/v1/todos"]
NEW_PASSWORD = "new-staple-horse-battery"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def change(client: TestClient, user: ApiUser, current: str, new: str) -> Response:
    return client.post(
        CHANGE, json={"current_password": current, "new_password": new}, headers=user.headers
    )


def try_login(client: TestClient, email: str, password: str) -> Response:
    return client.post(TOKEN, data={"username": email, "password": password})


def refresh(client: TestClient, refresh_token: str) -> Response:
    return client.post(REFRESH, json={"refresh_token": refresh_token})


def assert_unchanged(client: TestClient, user: ApiUser) -> None:
    """The old password still logs in and the user's tokens still work."""
    assert client.get("/api/v1/users/me", headers=user.headers).status_code == 200
    assert try_login(client, user.email, PASSWORD).status_code == 200
    assert try_login(client, user.email, NEW_PASSWORD).status_code == 401
    assert refresh(client, user.refresh_token).status_code == 200


def start_of_a_second() -> None:
    """Sleep until early in a wall-clock second, so the next few steps share that second."""
    fraction = time.time() % 1
    if fraction > 0.2:
        time.sleep(1 - fraction + 0.01)


def test_change_password(client: TestClient, user: ApiUser) -> None:
    response = change(client, user, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 204
    assert response.content == b""
    old = try_login(client, user.email, PASSWORD)
    assert old.status_code == 401
    assert old.json() == {"detail": "Incorrect email or password"}
    new = try_login(client, user.email, NEW_PASSWORD)
    assert new.status_code == 200
    assert (
        client.get("/api/v1/users/me", headers=bearer(new.json()["access_token"])).json()["id"]
        == user.id
    )


def test_wrong_current_password_is_400_and_changes_nothing(
    client: TestClient, user: ApiUser
) -> None:
    response = change(client, user, "not-the-password", NEW_PASSWORD)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert NEW_PASSWORD not in response.text
    assert_unchanged(client, user)


@pytest.mark.parametrize(
    ("new_password", "limit"),
    [
        ("Zq7#xYw", "8"),  # 7 bytes
        ("é" * 3 + "x", "8"),  # 7 bytes, 4 characters
        ("LongPw-" * 10 + "abc", "72"),  # 73 bytes
        ("é" * 36 + "x", "72"),  # 73 bytes, 37 characters
        ("€" * 25, "72"),  # 75 bytes, 25 characters
    ],
)
def test_new_password_outside_the_byte_limits_is_422(
    client: TestClient, user: ApiUser, new_password: str, limit: str
) -> None:
    response = change(client, user, PASSWORD, new_password)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    messages = [error["msg"] for error in errors if error["loc"][-1] == "new_password"]
    assert messages, errors
    assert any(limit in msg and "bytes" in msg for msg in messages), messages
    assert new_password not in response.text
    assert json.dumps(new_password) not in response.text
    assert PASSWORD not in response.text
    assert_unchanged(client, user)


@pytest.mark.parametrize("new_password", ["nul\x00in-the-middle", "\x00" * 8, "trailing-nul\x00"])
def test_new_password_with_nul_is_422(client: TestClient, user: ApiUser, new_password: str) -> None:
    response = change(client, user, PASSWORD, new_password)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(error["loc"][-1] == "new_password" for error in errors), errors
    assert json.dumps(new_password)[1:-1] not in response.text
    assert new_password not in response.text
    assert PASSWORD not in response.text
    assert_unchanged(client, user)


@pytest.mark.parametrize(
    "body",
    [
        {"current_password": PASSWORD},
        {"new_password": NEW_PASSWORD},
        {"current_password": PASSWORD, "new_password": None},
        {"current_password": PASSWORD, "new_password": 123456789},
        {"current_password": None, "new_password": NEW_PASSWORD},
    ],
)
def test_missing_or_mistyped_fields_are_422(
    client: TestClient, user: ApiUser, body: dict[str, object]
) -> None:
    response = client.post(CHANGE, json=body, headers=user.headers)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)
    assert PASSWORD not in response.text
    assert NEW_PASSWORD not in response.text
    assert_unchanged(client, user)


def test_every_refresh_token_of_the_user_is_revoked(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    second_login = login(client, user.email)
    rotated = refresh(client, str(second_login["refresh_token"]))
    assert rotated.status_code == 200
    assert change(client, user, PASSWORD, NEW_PASSWORD).status_code == 204

    assert_bearer_401(refresh(client, user.refresh_token))
    assert_bearer_401(refresh(client, rotated.json()["refresh_token"]))
    # Another user's login is untouched.
    assert refresh(client, other_user.refresh_token).status_code == 200


@pytest.mark.parametrize("path", PROTECTED)
def test_every_access_token_issued_before_the_change_is_401(
    client: TestClient, user: ApiUser, other_user: ApiUser, path: str
) -> None:
    second_login = login(client, user.email)
    second_access = str(second_login["access_token"])
    assert client.get(path, headers=bearer(second_access)).status_code == 200
    assert change(client, user, PASSWORD, NEW_PASSWORD).status_code == 204

    assert_bearer_401(client.get(path, headers=user.headers))
    assert_bearer_401(client.get(path, headers=bearer(second_access)))
    assert client.get(path, headers=other_user.headers).status_code == 200


@pytest.mark.parametrize("path", PROTECTED)
def test_a_token_from_the_same_second_as_the_change(
    client: TestClient, user: ApiUser, path: str
) -> None:
    start_of_a_second()
    # Issued just before the change, most likely within the same second: refused.
    before = str(login(client, user.email)["access_token"])
    response = client.post(
        CHANGE,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(before),
    )
    assert response.status_code == 204
    # Issued right after it, most likely within the same second: accepted.
    after = str(login(client, user.email, NEW_PASSWORD)["access_token"])
    assert client.get(path, headers=bearer(after)).status_code == 200
    assert_bearer_401(client.get(path, headers=bearer(before)))


def test_the_new_login_gets_a_working_refresh_token(client: TestClient, user: ApiUser) -> None:
    assert change(client, user, PASSWORD, NEW_PASSWORD).status_code == 204
    tokens = login(client, user.email, NEW_PASSWORD)
    response = refresh(client, str(tokens["refresh_token"]))
    assert response.status_code == 200
    me = client.get("/api/v1/users/me", headers=bearer(response.json()["access_token"]))
    assert me.status_code == 200


def test_changing_twice_in_a_row(client: TestClient, user: ApiUser) -> None:
    assert change(client, user, PASSWORD, NEW_PASSWORD).status_code == 204
    fresh = login(client, user.email, NEW_PASSWORD)
    response = client.post(
        CHANGE,
        json={"current_password": NEW_PASSWORD, "new_password": PASSWORD},
        headers=bearer(str(fresh["access_token"])),
    )
    assert response.status_code == 204
    assert try_login(client, user.email, PASSWORD).status_code == 200
    assert try_login(client, user.email, NEW_PASSWORD).status_code == 401


def assert_throttled(response: Response) -> None:
    assert response.status_code == 429, response.text
    assert set(response.json()) == {"detail"}
    assert 1 <= int(response.headers["retry-after"]) <= 900


def test_wrong_current_passwords_are_throttled_like_failed_logins(
    client: TestClient, user: ApiUser
) -> None:
    guesses = [change(client, user, f"guess-number-{n}", NEW_PASSWORD) for n in range(5)]
    assert [response.status_code for response in guesses] == [400] * 5
    # Past the limit: 429 before any bcrypt work, even for the right current password.
    assert_throttled(change(client, user, "guess-number-6", NEW_PASSWORD))
    assert_throttled(change(client, user, PASSWORD, NEW_PASSWORD))
    # They count for the account's logins from this address as well.
    assert_throttled(try_login(client, user.email, PASSWORD))
    assert client.get("/api/v1/users/me", headers=user.headers).status_code == 200


def test_a_login_failure_counts_against_the_password_change(
    client: TestClient, user: ApiUser
) -> None:
    for _ in range(5):
        assert try_login(client, user.email, "not-the-password").status_code == 401
    assert_throttled(change(client, user, PASSWORD, NEW_PASSWORD))


def test_requires_a_bearer_token(client: TestClient, user: ApiUser) -> None:
    response = client.post(
        CHANGE, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert_bearer_401(response)
    assert_unchanged(client, user)
