"""API.md v1.2: changing the email and deleting the account need `current_password`.

Missing → 422, wrong → 400 (changing nothing), throttled like logins → 429. The throttle for
a wrong current password is keyed on the account, not on its email: changing the email does
not reset it, and a taken email can no longer be probed without the password (it was an
enumeration oracle: 409 against 200, at request speed).
"""

import uuid

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import Engine, select

from app.accounts.models import User
from tests.accounts.helpers import assert_throttled
from tests.conftest import PASSWORD, ApiUser, login

ME = "/api/v1/users/me"
TOKEN = "/api/v1/auth/token"
WRONG = "not-the-password"
INCORRECT = {"detail": "Current password is incorrect"}


def change_email(client: TestClient, user: ApiUser, email: str, password: str | None) -> Response:
    body = {"email": email} if password is None else {"email": email, "current_password": password}
    return client.patch(ME, json=body, headers=user.headers)


def delete_me(client: TestClient, user: ApiUser, password: str | None) -> Response:
    body = None if password is None else {"current_password": password}
    return client.request("DELETE", ME, json=body, headers=user.headers)


def change_password(client: TestClient, user: ApiUser, current: str) -> Response:
    body = {"current_password": current, "new_password": "brand-new-password"}
    return client.post(f"{ME}/password", json=body, headers=user.headers)


def stored_email(db_engine: Engine, user_id: str) -> str | None:
    with db_engine.connect() as connection:
        query = select(User.email).where(User.id == uuid.UUID(user_id))
        email: str | None = connection.scalar(query)
        return email


def assert_missing(response: Response) -> None:
    assert response.status_code == 422, response.text
    locs = [error["loc"] for error in response.json()["detail"]]
    assert ["body", "current_password"] in locs, locs


def test_changing_the_email_without_current_password_is_422(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    assert_missing(change_email(client, user, "new@example.com", None))
    assert stored_email(db_engine, user.id) == user.email


def test_changing_the_email_with_a_wrong_password_is_400(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    response = change_email(client, user, "new@example.com", WRONG)
    assert response.status_code == 400, response.text
    assert response.json() == INCORRECT
    assert stored_email(db_engine, user.id) == user.email


def test_changing_the_email_with_the_password_works(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    response = change_email(client, user, "New@Example.com", PASSWORD)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "new@example.com"
    assert stored_email(db_engine, user.id) == "new@example.com"


def test_the_name_alone_needs_no_password(client: TestClient, user: ApiUser) -> None:
    response = client.patch(ME, json={"full_name": "Ada"}, headers=user.headers)
    assert response.status_code == 200, response.text


def test_a_taken_email_is_not_revealed_without_the_password(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    response = change_email(client, user, other_user.email, WRONG)
    assert response.status_code == 400, response.text
    assert response.json() == INCORRECT
    assert change_email(client, user, other_user.email, PASSWORD).status_code == 409


def test_deleting_the_account_without_current_password_is_422(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    no_body = delete_me(client, user, None)
    assert no_body.status_code == 422, no_body.text
    assert_missing(client.request("DELETE", ME, json={}, headers=user.headers))
    assert stored_email(db_engine, user.id) == user.email


def test_deleting_the_account_with_a_wrong_password_is_400(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    response = delete_me(client, user, WRONG)
    assert response.status_code == 400, response.text
    assert response.json() == INCORRECT
    assert stored_email(db_engine, user.id) == user.email


def test_deleting_the_account_with_the_password_works(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    assert delete_me(client, user, PASSWORD).status_code == 204
    assert stored_email(db_engine, user.id) is None


@pytest.mark.parametrize("operation", ["email", "delete"])
def test_wrong_passwords_are_throttled_like_logins(
    client: TestClient, user: ApiUser, db_engine: Engine, operation: str
) -> None:
    def attempt(password: str) -> Response:
        if operation == "email":
            return change_email(client, user, "elsewhere@example.com", password)
        return delete_me(client, user, password)

    for _ in range(5):
        assert attempt(WRONG).status_code == 400
    # Past the limit, even the right password: 429 before any bcrypt work, nothing changed.
    assert_throttled(attempt(PASSWORD))
    assert stored_email(db_engine, user.id) == user.email
    # The same count as the password change and the login from this address.
    assert_throttled(change_password(client, user, PASSWORD))
    assert_throttled(client.post(TOKEN, data={"username": user.email, "password": PASSWORD}))


def test_the_throttle_survives_an_email_change(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    for _ in range(4):
        assert change_password(client, user, WRONG).status_code == 400
    moved = change_email(client, user, "moved@example.com", PASSWORD)
    assert moved.status_code == 200, moved.text
    # The account's fifth failure, under its new email: the limit is reached all the same.
    assert change_password(client, user, WRONG).status_code == 400
    assert_throttled(change_password(client, user, PASSWORD))
    assert_throttled(change_email(client, user, "again@example.com", PASSWORD))
    assert_throttled(
        client.post(TOKEN, data={"username": "moved@example.com", "password": PASSWORD})
    )
    assert stored_email(db_engine, user.id) == "moved@example.com"


def test_login_failures_and_current_password_failures_share_the_account_count(
    client: TestClient, user: ApiUser
) -> None:
    for _ in range(3):
        wrong = client.post(TOKEN, data={"username": user.email, "password": WRONG})
        assert wrong.status_code == 401
    for _ in range(2):
        assert delete_me(client, user, WRONG).status_code == 400
    assert_throttled(delete_me(client, user, PASSWORD))
    assert_throttled(client.post(TOKEN, data={"username": user.email, "password": PASSWORD}))


def test_a_successful_check_does_not_log_the_user_out(client: TestClient, user: ApiUser) -> None:
    # Changing the email is not a credential change: the session goes on.
    assert change_email(client, user, "still-me@example.com", PASSWORD).status_code == 200
    assert client.get(ME, headers=user.headers).status_code == 200
    login(client, "still-me@example.com")
