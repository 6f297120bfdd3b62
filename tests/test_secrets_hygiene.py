"""No password, token or hash ever reaches a log line or an error response.

One fixture drives every flow that handles a secret (sign-up, login, refresh, logout, password
change, refused tokens and the error paths: 400, 401, 409, 413, 422, 500) with the root logger
at DEBUG, and collects each secret it used plus the hashes the database holds. The tests then
search every captured log record and every response for them.
"""

import base64
import json
import logging
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx2 import Response
from jose import jwt
from pydantic import SecretStr
from sqlalchemy import Engine, select

from app.accounts.models import RefreshToken, User
from app.config import Settings
from tests.conftest import TEST_SECRET, empty_tables

REGISTER = "/api/v1/auth/register"
TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"
PASSWORD_CHANGE = "/api/v1/users/me/password"
BOOM = "/test-only/boom"
MAX_BODY = 1024 * 1024

# Attributes every LogRecord has; anything else on a record came in through `extra=`.
STANDARD_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def fresh(label: str) -> str:
    """A password-like value that cannot occur anywhere by chance."""
    return f"{label}-{secrets.token_hex(10)}"


@dataclass
class Flows:
    client: TestClient
    responses: list[Response] = field(default_factory=list)
    # label → value; passwords are never allowed in any response, the rest only in success ones.
    passwords: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    records: list[logging.LogRecord] = field(default_factory=list)

    def call(self, method: str, url: str, **kwargs: Any) -> Response:
        response = self.client.request(method, url, **kwargs)
        self.responses.append(response)
        return response

    def password(self, label: str) -> str:
        self.passwords[label] = fresh(label)
        return self.passwords[label]

    def login(self, email: str, password: str, label: str) -> dict[str, str]:
        response = self.call("POST", TOKEN, data={"username": email, "password": password})
        assert response.status_code == 200, response.text
        return self.keep_pair(response, label)

    def keep_pair(self, response: Response, label: str) -> dict[str, str]:
        body: dict[str, str] = response.json()
        self.tokens[f"{label} access token"] = body["access_token"]
        self.tokens[f"{label} refresh token"] = body["refresh_token"]
        return body

    def keep_hashes(self, db_engine: Engine) -> None:
        with db_engine.connect() as connection:
            for hashed in connection.scalars(select(User.hashed_password)):
                self.hashes[f"bcrypt hash {hashed[:7]}…{hashed[-4:]}"] = hashed
                self.hashes[f"bcrypt salt+digest of …{hashed[-4:]}"] = hashed[7:]
            for digest in connection.scalars(select(RefreshToken.token_hash)):
                self.hashes[f"refresh token hash {digest[:8]}"] = digest

    @property
    def all_secrets(self) -> dict[str, str]:
        return {**self.passwords, **self.tokens, **self.hashes}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unsigned_token(user_id: str) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"sub": user_id, "iat": now, "exp": now + 600, "jti": "x", "type": "access"}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def signed_token(user_id: str, key: str = TEST_SECRET, expires_in: int = 600) -> str:
    now = int(time.time())
    claims = {
        "sub": user_id,
        "iat": now - 1200,
        "exp": now + expires_in,
        "jti": uuid.uuid4().hex,
        "type": "access",
    }
    return jwt.encode(claims, key, algorithm="HS256")


def record_text(record: logging.LogRecord) -> str:
    """Everything a handler could write for the record: message, traceback, stack, extras."""
    formatter = logging.Formatter()
    parts = [record.getMessage(), record.exc_text or ""]
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    parts.extend(
        f"{name}={value!r}"
        for name, value in vars(record).items()
        if name not in STANDARD_RECORD_ATTRIBUTES
    )
    return "\n".join(parts)


def response_text(response: Response) -> str:
    headers = "\n".join(f"{name}: {value}" for name, value in response.headers.multi_items())
    return f"{headers}\n\n{response.text}"


def leaks(text: str, secrets_by_label: dict[str, str]) -> list[str]:
    return [label for label, value in secrets_by_label.items() if value in text]


@pytest.fixture
def superuser_password() -> str:
    return fresh("first superuser password")


@pytest.fixture
def settings(settings: Settings, superuser_password: str) -> Settings:
    """The shared settings, plus a first superuser: startup handles a password too. No refresh
    grace window, so that re-presenting a rotated token at once takes the reuse path (401)."""
    return settings.model_copy(
        update={
            "first_superuser_email": "root@example.com",
            "first_superuser_password": SecretStr(superuser_password),
            "refresh_reuse_grace_seconds": 0,
        }
    )


@pytest.fixture
def hygiene_client(
    app: FastAPI, db_engine: Engine, caplog: pytest.LogCaptureFixture
) -> Iterator[TestClient]:
    caplog.set_level(logging.DEBUG)  # before startup, so its records are searched too

    @app.post(BOOM)
    def boom(payload: dict[str, str]) -> None:
        raise RuntimeError("a bug in a route")

    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
    finally:
        empty_tables(db_engine)


@pytest.fixture
def flows(
    hygiene_client: TestClient,
    db_engine: Engine,
    caplog: pytest.LogCaptureFixture,
    superuser_password: str,
) -> Flows:
    run = Flows(hygiene_client)
    run.passwords["first superuser password"] = superuser_password
    run.login("root@example.com", superuser_password, "superuser login")
    email = f"hygiene-{uuid.uuid4().hex[:8]}@example.com"

    # Sign-up, and the refusals around it.
    first = run.password("first password")
    response = run.call("POST", REGISTER, json={"email": email, "password": first})
    assert response.status_code == 201, response.text
    user_id = response.json()["id"]
    run.keep_hashes(db_engine)
    duplicate = run.password("duplicate sign-up password")
    assert run.call("POST", REGISTER, json={"email": email, "password": duplicate}).status_code == (
        409
    )
    for label, password in [("too short", "Sh0rt!x"), ("too long", fresh("long") * 4)]:
        run.passwords[f"{label} password"] = password
        response = run.call(
            "POST", REGISTER, json={"email": fresh("x") + "@x.io", "password": password}
        )
        assert response.status_code == 422, response.text
    bad_email = run.password("password with a bad email")
    response = run.call("POST", REGISTER, json={"email": "not-an-email", "password": bad_email})
    assert response.status_code == 422
    broken = run.password("password in broken JSON")
    response = run.call(
        "POST",
        REGISTER,
        content=f'{{"email": "{email}", "password": "{broken}"',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422

    # Login: right and wrong password, a password over bcrypt's limit.
    pair = run.login(email, first, "first login")
    wrong = run.password("wrong password guess")
    response = run.call("POST", TOKEN, data={"username": email, "password": wrong})
    assert response.status_code == 401
    over_limit = run.password("over-72-bytes login password") * 4
    run.passwords["over-72-bytes login password"] = over_limit
    response = run.call("POST", TOKEN, data={"username": email, "password": over_limit})
    assert response.status_code == 422

    # Refresh, reuse of a rotated token (401), logout, refresh after logout (401).
    response = run.call("POST", REFRESH, json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 200, response.text
    rotated = run.keep_pair(response, "refreshed")
    reused = run.call("POST", REFRESH, json={"refresh_token": pair["refresh_token"]})
    assert reused.status_code == 401
    assert run.call(
        "POST", LOGOUT, json={"refresh_token": rotated["refresh_token"]}
    ).status_code == (204)
    response = run.call("POST", REFRESH, json={"refresh_token": rotated["refresh_token"]})
    assert response.status_code == 401

    # Password change: wrong current password (400), then the real change.
    pair = run.login(email, first, "second login")
    wrong_current = run.password("wrong current password")
    second = run.password("second password")
    response = run.call(
        "POST",
        PASSWORD_CHANGE,
        json={"current_password": wrong_current, "new_password": second},
        headers=bearer(pair["access_token"]),
    )
    assert response.status_code == 400, response.text
    response = run.call(
        "POST",
        PASSWORD_CHANGE,
        json={"current_password": first, "new_password": second},
        headers=bearer(pair["access_token"]),
    )
    assert response.status_code == 204, response.text
    run.keep_hashes(db_engine)
    latest = run.login(email, second, "third login")

    # Bearer tokens that must be refused.
    access = latest["access_token"]
    head, payload, signature = access.split(".")
    flipped = "A" if signature[10] != "A" else "B"
    basic = base64.b64encode(f"{email}:{second}".encode()).decode()
    refused = {
        "revoked access token (issued before the password change)": pair["access_token"],
        "tampered access token": f"{head}.{payload}.{signature[:10]}{flipped}{signature[11:]}",
        "refresh token used as access token": latest["refresh_token"],
        "alg none token": unsigned_token(user_id),
        "token signed with another key": signed_token(user_id, key=fresh("other-key") * 3),
        "expired token": signed_token(user_id, expires_in=-60),
        "garbage token": fresh("garbage"),
    }
    run.tokens.update(refused)
    for token in refused.values():
        response = run.call("GET", ME, headers=bearer(token))
        assert response.status_code == 401, response.text
    run.tokens["basic credentials"] = basic
    response = run.call("GET", ME, headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 401

    # Bodies over the limit: declared, and streamed without a Content-Length.
    big = run.password("password in an oversized body")
    padding = "p" * MAX_BODY
    response = run.call(
        "POST", REGISTER, json={"email": email, "password": big, "full_name": padding}
    )
    assert response.status_code == 413, response.text
    big_form = run.password("password in an oversized login form")
    response = run.call(
        "POST", TOKEN, data={"username": email, "password": big_form, "padding": padding}
    )
    assert response.status_code == 413, response.text
    streamed = run.password("password in a streamed oversized body")
    chunks = [
        json.dumps({"email": email, "password": streamed, "full_name": "x"})[:-1].encode(),
        b', "padding": "' + b"p" * MAX_BODY + b'"}',
    ]
    response = run.call(
        "POST", REGISTER, content=iter(chunks), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text

    # An unexpected error while the request carries a live token and a password.
    boom_password = run.password("password sent to a failing route")
    response = run.call(
        "POST", BOOM, json={"password": boom_password}, headers=bearer(latest["access_token"])
    )
    assert response.status_code == 500

    run.keep_hashes(db_engine)
    run.records = list(caplog.records)
    return run


def test_the_flows_were_logged_at_debug(flows: Flows) -> None:
    """The capture is not vacuous: the 500's traceback is among the records searched."""
    assert flows.records
    assert any("RuntimeError" in record_text(record) for record in flows.records)
    assert len(flows.hashes) >= 6
    assert len(flows.tokens) >= 10


def test_no_secret_in_any_log_record(flows: Flows) -> None:
    found = [
        (record.name, record.levelname, label)
        for record in flows.records
        for label in leaks(record_text(record), flows.all_secrets)
    ]
    assert found == []


def test_no_secret_in_any_error_response(flows: Flows) -> None:
    errors = [response for response in flows.responses if response.status_code >= 400]
    assert {response.status_code for response in errors} >= {400, 401, 409, 413, 422, 500}
    found = [
        (response.request.method, response.request.url.path, response.status_code, label)
        for response in errors
        for label in leaks(response_text(response), flows.all_secrets)
    ]
    assert found == []


def test_no_password_or_hash_in_any_response(flows: Flows) -> None:
    found = [
        (response.request.method, response.request.url.path, response.status_code, label)
        for response in flows.responses
        for label in leaks(response_text(response), {**flows.passwords, **flows.hashes})
    ]
    assert found == []


def test_500_body_is_the_contract_one(flows: Flows) -> None:
    (response,) = [r for r in flows.responses if r.status_code == 500]
    body = response.json()
    assert set(body) == {"detail", "request_id"}
    assert body["detail"] == "Internal Server Error"
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
