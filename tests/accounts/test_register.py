"""POST /api/v1/auth/register: the user it returns, what it stores, and what it refuses."""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import Engine, func, select

from app.accounts.models import User
from app.config import Settings
from app.main import create_app
from tests.conftest import PASSWORD, empty_tables

REGISTER = "/api/v1/auth/register"
USER_KEYS = {"id", "email", "full_name", "is_active", "is_superuser", "created_at"}


def stored_emails(db_engine: Engine) -> list[str]:
    with db_engine.connect() as connection:
        return list(connection.scalars(select(User.email)))


def count_users(db_engine: Engine) -> int:
    with db_engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(User)) or 0


def assert_no_secret(text: str, password: str) -> None:
    assert password not in text
    assert "$2b$" not in text  # a bcrypt hash, whatever key it might hide under


def test_register_returns_the_user_and_nothing_secret(client: TestClient) -> None:
    response = client.post(
        REGISTER,
        json={"email": "ann@example.com", "password": PASSWORD, "full_name": "Ann Example"},
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == USER_KEYS
    assert body["email"] == "ann@example.com"
    assert body["full_name"] == "Ann Example"
    assert body["is_active"] is True
    assert body["is_superuser"] is False
    assert body["id"]
    assert body["created_at"]
    assert_no_secret(response.text, PASSWORD)


def test_register_stores_email_lower_case(client: TestClient, db_engine: Engine) -> None:
    response = client.post(REGISTER, json={"email": "Mixed.Case@Example.COM", "password": PASSWORD})
    assert response.status_code == 201
    assert response.json()["email"] == "mixed.case@example.com"
    assert stored_emails(db_engine) == ["mixed.case@example.com"]


def test_full_name_is_optional(client: TestClient) -> None:
    response = client.post(REGISTER, json={"email": "bob@example.com", "password": PASSWORD})
    assert response.status_code == 201
    assert response.json()["full_name"] is None


def test_full_name_of_200_chars_is_accepted(client: TestClient) -> None:
    response = client.post(
        REGISTER, json={"email": "long@example.com", "password": PASSWORD, "full_name": "x" * 200}
    )
    assert response.status_code == 201
    assert response.json()["full_name"] == "x" * 200


@pytest.mark.parametrize("second", ["dup@example.com", "DUP@Example.com", "dup@EXAMPLE.COM"])
def test_duplicate_email_is_409(client: TestClient, db_engine: Engine, second: str) -> None:
    first = client.post(REGISTER, json={"email": "dup@example.com", "password": PASSWORD})
    assert first.status_code == 201

    response = client.post(REGISTER, json={"email": second, "password": "another-password"})
    assert response.status_code == 409
    assert set(response.json()) == {"detail"}
    assert isinstance(response.json()["detail"], str)
    assert count_users(db_engine) == 1


def test_duplicate_of_a_mixed_case_registration_is_409(client: TestClient) -> None:
    first = client.post(REGISTER, json={"email": "Carol@Example.com", "password": PASSWORD})
    assert first.status_code == 201
    response = client.post(REGISTER, json={"email": "carol@example.com", "password": PASSWORD})
    assert response.status_code == 409


def field_errors(response: Response, field: str) -> list[dict[str, Any]]:
    """The 422's errors about one body field; fails unless there is at least one."""
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert isinstance(errors, list)
    mine = [error for error in errors if error["loc"][-1] == field]
    assert mine, errors
    return mine


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "missing-at.example.com", "password": PASSWORD},
        {"email": "", "password": PASSWORD},
        {"password": PASSWORD},
    ],
)
def test_invalid_or_missing_email_is_422(
    client: TestClient, db_engine: Engine, payload: dict[str, str]
) -> None:
    response = client.post(REGISTER, json=payload)
    field_errors(response, "email")
    assert PASSWORD not in response.text
    assert count_users(db_engine) == 0


def test_missing_password_is_422(client: TestClient, db_engine: Engine) -> None:
    response = client.post(REGISTER, json={"email": "nopass@example.com"})
    field_errors(response, "password")
    assert count_users(db_engine) == 0


@pytest.mark.parametrize(
    "password",
    [
        "short77",  # 7 bytes
        "é" * 37,  # 74 bytes in UTF-8, though only 37 characters
        "a" * 73,
        "a" * 71 + "é",  # 73 bytes
    ],
)
def test_password_outside_8_to_72_bytes_is_422_and_not_echoed(
    client: TestClient, db_engine: Engine, password: str
) -> None:
    response = client.post(REGISTER, json={"email": "pw@example.com", "password": password})
    messages = " ".join(error["msg"] for error in field_errors(response, "password"))
    assert "72" in messages
    assert "byte" in messages.lower()
    assert password not in response.text
    assert count_users(db_engine) == 0


@pytest.mark.parametrize("password", ["é" * 36, "a" * 72, "a" * 8, "é" * 4])
def test_password_of_8_to_72_bytes_is_accepted(client: TestClient, password: str) -> None:
    response = client.post(REGISTER, json={"email": "ok@example.com", "password": password})
    assert response.status_code == 201
    assert password not in response.text
    login = client.post(
        "/api/v1/auth/token", data={"username": "ok@example.com", "password": password}
    )
    assert login.status_code == 200


def test_full_name_over_200_chars_is_422(client: TestClient, db_engine: Engine) -> None:
    response = client.post(
        REGISTER, json={"email": "name@example.com", "password": PASSWORD, "full_name": "x" * 201}
    )
    field_errors(response, "full_name")
    assert PASSWORD not in response.text
    assert count_users(db_engine) == 0


def test_422_body_never_echoes_the_password(client: TestClient) -> None:
    secret = "my-very-secret-pw"
    response = client.post(REGISTER, json={"email": "bad", "password": secret, "full_name": 7})
    assert response.status_code == 422
    assert secret not in response.text


def test_signup_disabled_is_403(client: TestClient, settings: Settings, db_engine: Engine) -> None:
    app = create_app(settings.model_copy(update={"allow_signup": False}))
    with TestClient(app) as closed:
        response = closed.post(REGISTER, json={"email": "late@example.com", "password": PASSWORD})
    assert response.status_code == 403
    assert set(response.json()) == {"detail"}
    assert count_users(db_engine) == 0


def test_concurrent_signups_for_one_email_create_one_user(
    settings: Settings, db_engine: Engine
) -> None:
    payload = {"email": "race@example.com", "password": PASSWORD}
    try:
        with (
            # Room for all 50 in the hashing queue: the race is about the unique email.
            TestClient(
                create_app(settings.model_copy(update={"hash_queue_limit": 50})),
                raise_server_exceptions=False,
            ) as client,
            ThreadPoolExecutor(max_workers=50) as pool,
        ):
            futures = [pool.submit(client.post, REGISTER, json=payload) for _ in range(50)]
            statuses = sorted(future.result().status_code for future in futures)
        assert statuses.count(201) == 1, statuses
        assert statuses.count(409) == 49, statuses
        assert count_users(db_engine) == 1
    finally:
        empty_tables(db_engine)
