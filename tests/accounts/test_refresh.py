"""POST /api/v1/auth/refresh and /api/v1/auth/logout: rotation, reuse detection, logout."""

import hashlib
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import Engine, select, update

from app.accounts.models import RefreshToken
from app.database import utcnow
from tests.conftest import ApiUser, assert_bearer_401, deactivate, login, make_user

REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"
TOKEN_KEYS = {"access_token", "token_type", "expires_in", "refresh_token"}
INVALID_BODIES: list[Any] = [
    {},
    {"refresh_token": ""},
    {"refresh_token": None},
    {"refresh_token": 12345},
    {"refresh_token": ["a-token"]},
    {"refresh_token": {"token": "a-token"}},
    {"token": "a-token"},
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refresh(client: TestClient, refresh_token: str) -> Response:
    return client.post(REFRESH, json={"refresh_token": refresh_token})


def assert_new_pair(response: Response, old_access: str, old_refresh: str) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == TOKEN_KEYS
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 30 * 60
    assert isinstance(body["access_token"], str)
    assert isinstance(body["refresh_token"], str)
    assert body["access_token"] not in {old_access, old_refresh}
    assert body["refresh_token"] not in {old_access, old_refresh}
    return body


def family_of(db_engine: Engine, raw_token: str) -> uuid.UUID:
    digest = hashlib.sha256(raw_token.encode()).hexdigest()
    with db_engine.connect() as connection:
        family = connection.scalar(
            select(RefreshToken.family_id).where(RefreshToken.token_hash == digest)
        )
    assert family is not None
    return family


def revoked_flags(db_engine: Engine, family_id: uuid.UUID) -> list[bool]:
    with db_engine.connect() as connection:
        revoked = connection.scalars(
            select(RefreshToken.revoked_at).where(RefreshToken.family_id == family_id)
        ).all()
    return [value is not None for value in revoked]


def test_refresh_rotates_the_pair_along_a_chain(client: TestClient, user: ApiUser) -> None:
    access, current = user.access_token, user.refresh_token
    seen = {access, current}
    for _ in range(3):
        body = assert_new_pair(refresh(client, current), access, current)
        me = client.get(ME, headers=bearer(body["access_token"]))
        assert me.status_code == 200
        assert me.json()["id"] == user.id
        access, current = body["access_token"], body["refresh_token"]
        assert access not in seen
        assert current not in seen
        seen |= {access, current}


def age_rotation(db_engine: Engine, raw_token: str, by: timedelta) -> None:
    """As if the token had been exchanged `by` ago."""
    where = RefreshToken.token_hash == hashlib.sha256(raw_token.encode()).hexdigest()
    with db_engine.begin() as connection:
        # Computed here: SQLite has no timestamp arithmetic.
        rotated_at = connection.scalar(select(RefreshToken.rotated_at).where(where))
        assert rotated_at is not None
        connection.execute(update(RefreshToken).where(where).values(rotated_at=rotated_at - by))


# Past REFRESH_REUSE_GRACE_SECONDS (30): presenting the token again is reuse.
PAST_GRACE = timedelta(seconds=31)


def test_a_rotated_token_stops_working_after_the_grace_window(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    assert refresh(client, user.refresh_token).status_code == 200
    age_rotation(db_engine, user.refresh_token, PAST_GRACE)
    assert_bearer_401(refresh(client, user.refresh_token))


def test_a_token_presented_again_within_the_grace_window_gets_a_working_pair(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    first = refresh(client, user.refresh_token)
    assert first.status_code == 200
    # 29 seconds later: still within the window (the first use's time counts, not the last).
    age_rotation(db_engine, user.refresh_token, timedelta(seconds=29))
    again = refresh(client, user.refresh_token)
    second = assert_new_pair(again, first.json()["access_token"], first.json()["refresh_token"])
    pairs = [first.json(), second]
    assert pairs[0]["refresh_token"] != pairs[1]["refresh_token"]
    family = family_of(db_engine, user.refresh_token)
    assert {family_of(db_engine, p["refresh_token"]) for p in pairs} == {family}
    for pair in pairs:
        assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 200
        assert refresh(client, pair["refresh_token"]).status_code == 200
    # Once the window is over, the same token is reuse, and that ends every branch.
    age_rotation(db_engine, user.refresh_token, timedelta(seconds=2))
    assert_bearer_401(refresh(client, user.refresh_token))
    assert all(revoked_flags(db_engine, family))


def test_logout_ends_what_the_grace_window_issued(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    first = refresh(client, user.refresh_token).json()
    second = refresh(client, user.refresh_token).json()
    response = client.post(LOGOUT, json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 204
    for token in (user.refresh_token, first["refresh_token"], second["refresh_token"]):
        assert_bearer_401(refresh(client, token))
    assert all(revoked_flags(db_engine, family_of(db_engine, user.refresh_token)))


def test_reuse_revokes_that_login_and_only_that_login(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    second_login = login(client, user.email)
    first = refresh(client, user.refresh_token)
    assert first.status_code == 200
    newest = first.json()
    family = family_of(db_engine, user.refresh_token)
    age_rotation(db_engine, user.refresh_token, PAST_GRACE)

    assert_bearer_401(refresh(client, user.refresh_token))  # reuse of a rotated token

    assert_bearer_401(refresh(client, newest["refresh_token"]))
    assert all(revoked_flags(db_engine, family))
    assert len(revoked_flags(db_engine, family)) == 2
    # Access tokens are not revoked: they expire on their own.
    assert client.get(ME, headers=bearer(newest["access_token"])).status_code == 200

    other = refresh(client, str(second_login["refresh_token"]))
    assert other.status_code == 200
    assert refresh(client, other.json()["refresh_token"]).status_code == 200
    assert not any(
        revoked_flags(db_engine, family_of(db_engine, str(second_login["refresh_token"])))
    )


def test_reuse_of_an_older_token_in_the_chain_revokes_the_newest(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    first = refresh(client, user.refresh_token).json()
    second = refresh(client, first["refresh_token"]).json()
    age_rotation(db_engine, user.refresh_token, PAST_GRACE)
    assert_bearer_401(refresh(client, user.refresh_token))
    assert_bearer_401(refresh(client, second["refresh_token"]))
    assert_bearer_401(refresh(client, first["refresh_token"]))


@pytest.mark.parametrize(
    "token",
    ["garbage", "x" * 43, "a.b.c", "0" * 32, " ", "ünïcødé-token"],
)
def test_unknown_token_is_401(client: TestClient, user: ApiUser, token: str) -> None:
    assert_bearer_401(refresh(client, token))


@pytest.mark.parametrize("body", INVALID_BODIES)
def test_invalid_body_is_422(client: TestClient, user: ApiUser, body: Any) -> None:
    response = client.post(REFRESH, json=body)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)
    # Nothing was consumed: the real token still works.
    assert refresh(client, user.refresh_token).status_code == 200


def test_non_json_body_is_422(client: TestClient, user: ApiUser) -> None:
    response = client.post(REFRESH, data={"refresh_token": user.refresh_token})
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


def test_expired_refresh_token_is_401(client: TestClient, user: ApiUser, db_engine: Engine) -> None:
    digest = hashlib.sha256(user.refresh_token.encode()).hexdigest()
    with db_engine.begin() as connection:
        connection.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == digest)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    assert_bearer_401(refresh(client, user.refresh_token))


def test_refresh_token_of_a_deactivated_user_is_401(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    deactivate(db_engine, user.id)
    assert_bearer_401(refresh(client, user.refresh_token))


def test_refresh_token_of_a_deleted_user_is_401(client: TestClient, user: ApiUser) -> None:
    body = {"current_password": user.password}
    assert client.request("DELETE", ME, json=body, headers=user.headers).status_code == 204
    assert_bearer_401(refresh(client, user.refresh_token))


def test_access_token_as_refresh_token_is_401(client: TestClient, user: ApiUser) -> None:
    assert_bearer_401(refresh(client, user.access_token))
    # The failed attempt did not touch the login.
    assert refresh(client, user.refresh_token).status_code == 200


def test_concurrent_refreshes_with_one_token_all_get_working_pairs(
    client: TestClient, db_engine: Engine
) -> None:
    """Two app processes refreshing at once (here: eight) all stay logged in, until the
    login ends; then none of them is."""
    attempts = 8
    user = make_user(client)
    barrier = threading.Barrier(attempts)

    def at_once() -> Response:
        barrier.wait()
        return refresh(client, user.refresh_token)

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        responses = [f.result() for f in [pool.submit(at_once) for _ in range(attempts)]]
    assert [r.status_code for r in responses] == [200] * attempts, [r.text for r in responses]
    pairs = [r.json() for r in responses]
    assert len({p["refresh_token"] for p in pairs}) == attempts
    family = family_of(db_engine, user.refresh_token)
    assert {family_of(db_engine, p["refresh_token"]) for p in pairs} == {family}
    latest = []
    for pair in pairs:
        assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 200
        rotated = refresh(client, pair["refresh_token"])
        assert rotated.status_code == 200, rotated.text
        latest.append(rotated.json()["refresh_token"])
    assert client.post(LOGOUT, json={"refresh_token": latest[0]}).status_code == 204
    for token in [user.refresh_token, *(p["refresh_token"] for p in pairs), *latest]:
        assert_bearer_401(refresh(client, token))
    assert all(revoked_flags(db_engine, family))


def test_logout_needs_no_bearer_and_ends_the_refresh_token(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    response = client.post(LOGOUT, json={"refresh_token": user.refresh_token})
    assert response.status_code == 204
    assert response.content == b""
    assert "authorization" not in {name.lower() for name in response.request.headers}
    assert_bearer_401(refresh(client, user.refresh_token))
    assert all(revoked_flags(db_engine, family_of(db_engine, user.refresh_token)))


def test_logout_twice_is_204(client: TestClient, user: ApiUser) -> None:
    for _ in range(2):
        response = client.post(LOGOUT, json={"refresh_token": user.refresh_token})
        assert response.status_code == 204
    assert_bearer_401(refresh(client, user.refresh_token))


def test_logout_of_a_rotated_token_is_204(client: TestClient, user: ApiUser) -> None:
    assert refresh(client, user.refresh_token).status_code == 200
    assert client.post(LOGOUT, json={"refresh_token": user.refresh_token}).status_code == 204
    assert_bearer_401(refresh(client, user.refresh_token))


@pytest.mark.parametrize("token", ["unknown-token", "0" * 32, "a.b.c"])
def test_logout_with_an_unknown_token_is_204(client: TestClient, user: ApiUser, token: str) -> None:
    assert client.post(LOGOUT, json={"refresh_token": token}).status_code == 204
    assert refresh(client, user.refresh_token).status_code == 200


@pytest.mark.parametrize("body", INVALID_BODIES)
def test_logout_with_an_invalid_body_is_422(client: TestClient, user: ApiUser, body: Any) -> None:
    response = client.post(LOGOUT, json=body)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)


def test_logout_leaves_other_logins_working(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    second_login = login(client, user.email)
    assert client.post(LOGOUT, json={"refresh_token": user.refresh_token}).status_code == 204
    assert_bearer_401(refresh(client, user.refresh_token))
    assert refresh(client, str(second_login["refresh_token"])).status_code == 200
    assert refresh(client, other_user.refresh_token).status_code == 200


def test_logout_does_not_revoke_access_tokens(client: TestClient, user: ApiUser) -> None:
    assert client.post(LOGOUT, json={"refresh_token": user.refresh_token}).status_code == 204
    response = client.get(ME, headers=user.headers)
    assert response.status_code == 200
    assert response.json()["id"] == user.id
