"""Every bearer token that must not be trusted is a 401 with `WWW-Authenticate: Bearer`.

Each case is tried on two protected routes, so no route can forget the check. The first test
shows that a hand-made token with the right key and claims does work: the refusals below are
about the one thing each case changes.
"""

import base64
import json
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import Engine

from app.accounts import security
from tests.conftest import TEST_SECRET, ApiUser, assert_bearer_401, deactivate

PROTECTED = ["/api/v1/users/me", "/api/v1/todos"]


def valid_claims(user_id: str) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": user_id,
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "type": "access",
        "gen": 0,  # a new user's credential generation
    }


def sign(claims: dict[str, Any], key: str = TEST_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def b64url(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", PROTECTED)
def test_a_well_formed_token_is_accepted(client: TestClient, user: ApiUser, path: str) -> None:
    assert client.get(path, headers=user.headers).status_code == 200
    assert client.get(path, headers=bearer(sign(valid_claims(user.id)))).status_code == 200


@pytest.mark.parametrize("path", PROTECTED)
def test_missing_header(client: TestClient, path: str) -> None:
    assert_bearer_401(client.get(path))


@pytest.mark.parametrize("path", PROTECTED)
@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer ",
        "Bearer",
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.",
        "Bearer not a token at all",
    ],
)
def test_garbage_bearer(client: TestClient, path: str, authorization: str) -> None:
    assert_bearer_401(client.get(path, headers={"Authorization": authorization}))


@pytest.mark.parametrize("path", PROTECTED)
def test_non_bearer_scheme(client: TestClient, user: ApiUser, path: str) -> None:
    basic = base64.b64encode(f"{user.email}:{user.password}".encode()).decode()
    assert_bearer_401(client.get(path, headers={"Authorization": f"Basic {basic}"}))
    # A perfectly good access token under another scheme is still not a bearer token.
    assert_bearer_401(client.get(path, headers={"Authorization": f"Token {user.access_token}"}))


@pytest.mark.parametrize("path", PROTECTED)
@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none(client: TestClient, user: ApiUser, path: str, alg: str) -> None:
    token = f"{b64url({'alg': alg, 'typ': 'JWT'})}.{b64url(valid_claims(user.id))}."
    assert_bearer_401(client.get(path, headers=bearer(token)))


@pytest.mark.parametrize("path", PROTECTED)
def test_wrong_signature(client: TestClient, user: ApiUser, path: str) -> None:
    forged = sign(valid_claims(user.id), key="another-key-that-is-also-long-enough-for-hs256")
    assert_bearer_401(client.get(path, headers=bearer(forged)))


@pytest.mark.parametrize("path", PROTECTED)
def test_tampered_payload(
    client: TestClient, user: ApiUser, other_user: ApiUser, path: str
) -> None:
    header, _, signature = user.access_token.split(".")
    payload = b64url(valid_claims(other_user.id))
    assert_bearer_401(client.get(path, headers=bearer(f"{header}.{payload}.{signature}")))


@pytest.mark.parametrize("path", PROTECTED)
def test_expired(client: TestClient, user: ApiUser, path: str) -> None:
    now = int(time.time())
    claims = {**valid_claims(user.id), "iat": now - 3600, "exp": now - 60}
    assert_bearer_401(client.get(path, headers=bearer(sign(claims))))


@pytest.mark.parametrize("path", PROTECTED)
def test_a_token_that_worked_is_refused_once_it_expires(
    client: TestClient, user: ApiUser, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service remembers tokens it verified (app.accounts.security); expiry still applies."""
    now = int(time.time())
    token = sign({**valid_claims(user.id), "exp": now + 30})
    assert client.get(path, headers=bearer(token)).status_code == 200
    monkeypatch.setattr(security, "time", SimpleNamespace(time=lambda: now + 31.0))
    assert_bearer_401(client.get(path, headers=bearer(token)))


@pytest.mark.parametrize("path", PROTECTED)
def test_an_overlong_token_is_refused(client: TestClient, user: ApiUser, path: str) -> None:
    # Signed with the right key, but no token of ours is anywhere near this long.
    token = sign({**valid_claims(user.id), "padding": "x" * 2000})
    assert_bearer_401(client.get(path, headers=bearer(token)))


@pytest.mark.parametrize("path", PROTECTED)
@pytest.mark.parametrize("claim", ["sub", "exp", "iat", "jti", "type", "gen"])
def test_missing_required_claim(client: TestClient, user: ApiUser, path: str, claim: str) -> None:
    claims = valid_claims(user.id)
    del claims[claim]
    assert_bearer_401(client.get(path, headers=bearer(sign(claims))))


@pytest.mark.parametrize("path", PROTECTED)
@pytest.mark.parametrize("token_type", ["refresh", "Access", "", None])
def test_type_other_than_access(
    client: TestClient, user: ApiUser, path: str, token_type: str | None
) -> None:
    claims = {**valid_claims(user.id), "type": token_type}
    assert_bearer_401(client.get(path, headers=bearer(sign(claims))))


@pytest.mark.parametrize("path", PROTECTED)
@pytest.mark.parametrize("generation", [1, -1, "0", 0.0, True, False, None, [0]])
def test_generation_other_than_the_users(
    client: TestClient, user: ApiUser, path: str, generation: object
) -> None:
    claims = {**valid_claims(user.id), "gen": generation}
    assert_bearer_401(client.get(path, headers=bearer(sign(claims))))


@pytest.mark.parametrize("path", PROTECTED)
def test_refresh_token_as_bearer(client: TestClient, user: ApiUser, path: str) -> None:
    assert_bearer_401(client.get(path, headers=bearer(user.refresh_token)))


@pytest.mark.parametrize("path", PROTECTED)
@pytest.mark.parametrize("sub", ["not-a-uuid", "", "1", "../admin"])
def test_sub_not_a_uuid(client: TestClient, user: ApiUser, path: str, sub: str) -> None:
    claims = {**valid_claims(user.id), "sub": sub}
    assert_bearer_401(client.get(path, headers=bearer(sign(claims))))


@pytest.mark.parametrize("path", PROTECTED)
def test_sub_of_no_user(client: TestClient, user: ApiUser, path: str) -> None:
    claims = {**valid_claims(user.id), "sub": str(uuid.uuid4())}
    assert_bearer_401(client.get(path, headers=bearer(sign(claims))))


@pytest.mark.parametrize("path", PROTECTED)
def test_token_of_a_deleted_user(client: TestClient, user: ApiUser, path: str) -> None:
    body = {"current_password": user.password}
    assert (
        client.request("DELETE", "/api/v1/users/me", json=body, headers=user.headers).status_code
        == 204
    )
    assert_bearer_401(client.get(path, headers=user.headers))


@pytest.mark.parametrize("path", PROTECTED)
def test_token_of_a_deactivated_user(
    client: TestClient, user: ApiUser, db_engine: Engine, path: str
) -> None:
    assert client.get(path, headers=user.headers).status_code == 200
    deactivate(db_engine, user.id)
    assert_bearer_401(client.get(path, headers=user.headers))


@pytest.mark.parametrize("path", PROTECTED)
@pytest.mark.parametrize("algorithm", ["HS512", "HS384"])
def test_other_algorithm_than_the_pinned_one(
    client: TestClient, user: ApiUser, path: str, algorithm: str
) -> None:
    token = sign(valid_claims(user.id), algorithm=algorithm)
    assert_bearer_401(client.get(path, headers=bearer(token)))
