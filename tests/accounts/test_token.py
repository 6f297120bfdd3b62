"""POST /api/v1/auth/token: the OAuth2 password grant, the tokens it issues and its refusals."""

import hashlib
import time
import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import Engine, text

from app.config import Settings
from app.main import create_app
from tests.conftest import PASSWORD, TEST_SECRET, ApiUser, deactivate, make_user

TOKEN = "/api/v1/auth/token"
TOKEN_KEYS = {"access_token", "token_type", "expires_in", "refresh_token"}
# A login's answer also carries a device token (API.md v1.2; test_throttle_account.py).
LOGIN_KEYS = TOKEN_KEYS | {"device_token"}
BAD_CREDENTIALS = {"detail": "Incorrect email or password"}


def claims_of(access_token: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(access_token, TEST_SECRET, algorithms=["HS256"])
    return claims


def test_form_login_returns_a_token_pair(client: TestClient, user: ApiUser) -> None:
    response = client.post(TOKEN, data={"username": user.email, "password": PASSWORD})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == LOGIN_KEYS
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 30 * 60
    assert isinstance(body["access_token"], str)
    assert body["access_token"]
    assert isinstance(body["refresh_token"], str)
    assert body["refresh_token"]
    assert body["refresh_token"] != body["access_token"]
    assert PASSWORD not in response.text


def test_grant_type_password_is_accepted(client: TestClient, user: ApiUser) -> None:
    response = client.post(
        TOKEN, data={"grant_type": "password", "username": user.email, "password": PASSWORD}
    )
    assert response.status_code == 200
    assert set(response.json()) == LOGIN_KEYS


@pytest.mark.parametrize("grant_type", ["client_credentials", "refresh_token", "Password", "x"])
def test_other_grant_type_is_422(client: TestClient, user: ApiUser, grant_type: str) -> None:
    response = client.post(
        TOKEN, data={"grant_type": grant_type, "username": user.email, "password": PASSWORD}
    )
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)
    assert PASSWORD not in response.text


def test_json_body_is_422(client: TestClient, user: ApiUser) -> None:
    response = client.post(TOKEN, json={"username": user.email, "password": PASSWORD})
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)
    assert PASSWORD not in response.text


@pytest.mark.parametrize(
    ("form", "missing"),
    [
        ({"password": PASSWORD}, "username"),
        ({"username": "someone@example.com"}, "password"),
        ({}, "username"),
    ],
)
def test_missing_username_or_password_is_422(
    client: TestClient, user: ApiUser, form: dict[str, str], missing: str
) -> None:
    response = client.post(TOKEN, data=form)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(error["loc"][-1] == missing for error in errors)
    assert PASSWORD not in response.text


@pytest.mark.parametrize("transform", [str.upper, str.title, str.swapcase])
def test_login_is_case_insensitive_on_email(
    client: TestClient, transform: Callable[[str], str]
) -> None:
    user = make_user(client, email="Case.Person@Example.com")
    assert user.email == "case.person@example.com"
    response = client.post(TOKEN, data={"username": transform(user.email), "password": PASSWORD})
    assert response.status_code == 200
    assert claims_of(response.json()["access_token"])["sub"] == user.id


def test_access_token_is_a_jwt_with_the_contract_claims(client: TestClient, user: ApiUser) -> None:
    before = time.time()
    response = client.post(TOKEN, data={"username": user.email, "password": PASSWORD})
    after = time.time()
    token = response.json()["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"

    claims = claims_of(token)
    assert {"sub", "exp", "iat", "jti", "type"} <= set(claims)
    assert claims["sub"] == user.id
    assert str(uuid.UUID(str(claims["sub"]))) == user.id
    assert claims["type"] == "access"
    assert isinstance(claims["jti"], str)
    assert claims["jti"]
    iat, exp = claims["iat"], claims["exp"]
    assert isinstance(iat, int | float)
    assert isinstance(exp, int | float)
    assert before - 1 <= iat <= after + 1
    assert abs((exp - iat) - 30 * 60) <= 1


def test_each_login_gets_a_fresh_jti(client: TestClient, user: ApiUser) -> None:
    tokens = [
        client.post(TOKEN, data={"username": user.email, "password": PASSWORD}).json()
        for _ in range(2)
    ]
    jtis = {claims_of(pair["access_token"])["jti"] for pair in tokens}
    assert len(jtis) == 2
    assert tokens[0]["refresh_token"] != tokens[1]["refresh_token"]


def test_expiry_follows_the_setting(
    client: TestClient, settings: Settings, db_engine: Engine
) -> None:
    app = create_app(settings.model_copy(update={"access_token_expire_minutes": 5}))
    with TestClient(app) as short:
        user = make_user(short)
        body = short.post(TOKEN, data={"username": user.email, "password": PASSWORD}).json()
    assert body["expires_in"] == 5 * 60
    claims = claims_of(body["access_token"])
    exp, iat = claims["exp"], claims["iat"]
    assert isinstance(exp, int | float)
    assert isinstance(iat, int | float)
    assert abs((exp - iat) - 5 * 60) <= 1


def test_wrong_password_and_unknown_email_look_the_same(client: TestClient, user: ApiUser) -> None:
    wrong_password = client.post(
        TOKEN, data={"username": user.email, "password": "not-the-password"}
    )
    unknown_email = client.post(
        TOKEN, data={"username": "nobody@example.com", "password": PASSWORD}
    )
    for response in (wrong_password, unknown_email):
        assert response.status_code == 401
        assert response.json() == BAD_CREDENTIALS
        assert response.headers["www-authenticate"] == "Bearer"
    assert wrong_password.content == unknown_email.content


def test_wrong_password_of_a_mixed_case_email_is_the_same_401(
    client: TestClient, user: ApiUser
) -> None:
    response = client.post(
        TOKEN, data={"username": user.email.upper(), "password": "not-the-password"}
    )
    assert response.status_code == 401
    assert response.json() == BAD_CREDENTIALS


@pytest.mark.parametrize("password", ["é" * 37, "a" * 73, "a" * 1000])
def test_password_over_72_bytes_at_login_is_422(
    client: TestClient, user: ApiUser, password: str
) -> None:
    response = client.post(TOKEN, data={"username": user.email, "password": password})
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert isinstance(errors, list)
    assert any("72" in error["msg"] for error in errors)
    assert password not in response.text


def test_inactive_user_with_the_right_password_is_403(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    deactivate(db_engine, user.id)
    response = client.post(TOKEN, data={"username": user.email, "password": PASSWORD})
    assert response.status_code == 403
    assert response.json() == {"detail": "Inactive user"}


def test_inactive_user_with_a_wrong_password_is_401(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    deactivate(db_engine, user.id)
    response = client.post(TOKEN, data={"username": user.email, "password": "not-the-password"})
    assert response.status_code == 401
    assert response.json() == BAD_CREDENTIALS


def test_refresh_token_is_stored_only_as_its_sha256(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    body = client.post(TOKEN, data={"username": user.email, "password": PASSWORD}).json()
    raw = body["refresh_token"]
    digest = hashlib.sha256(raw.encode()).hexdigest()

    with db_engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM refresh_tokens")).all()
    values = [str(value) for row in rows for value in row]
    assert len(rows) == 2  # make_user logged in once already
    assert not any(raw in value for value in values)
    assert digest in values
