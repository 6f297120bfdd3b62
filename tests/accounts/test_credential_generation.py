"""A password change or a deactivation ends every login, also the ones in flight.

Logins (and refreshes) race the change: each is a real request on a real database, started
from many threads while the change runs. Whatever each of them got back, none of its tokens
may work afterwards: no access token passes, no refresh token rotates.
"""

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import Engine, delete, func, select, update

from app.accounts.models import LoginFailure, RefreshToken, User
from app.config import Settings
from app.main import create_app
from tests.conftest import PASSWORD, ApiUser, empty_tables, login, make_user

TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/refresh"
CHANGE = "/api/v1/users/me/password"
ME = "/api/v1/users/me"
NEW_PASSWORD = "new-staple-horse-battery"
RACERS = 120
THREADS = 24


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def race(requests: list[Callable[[], Response]], change: Callable[[], Response]) -> list[Response]:
    """Run the requests from many threads and `change` once while a third of them are done."""
    started = threading.Semaphore(0)
    changed: list[Response] = []

    def run(request: Callable[[], Response]) -> Response:
        started.release()
        return request()

    def change_midway() -> None:
        for _ in range(len(requests) // 3):
            started.acquire()
        changed.append(change())

    with ThreadPoolExecutor(max_workers=THREADS + 1) as pool:
        changer = pool.submit(change_midway)
        futures = [pool.submit(run, request) for request in requests]
        responses = [future.result() for future in futures]
        changer.result()
    assert changed[0].status_code in {200, 204}, changed[0].text
    assert all(r.status_code != 500 for r in responses), [r.text for r in responses]
    return responses


def assert_no_token_works(client: TestClient, responses: list[Response]) -> int:
    """Every pair handed out is dead: its access token is 401, its refresh token does not
    rotate. Returns how many pairs were handed out (the race must have issued some)."""
    pairs = [r.json() for r in responses if r.status_code == 200]
    working_access = [
        p for p in pairs if client.get(ME, headers=bearer(p["access_token"])).status_code != 401
    ]
    rotating = [
        p
        for p in pairs
        if client.post(REFRESH, json={"refresh_token": p["refresh_token"]}).status_code != 401
    ]
    assert (len(working_access), len(rotating)) == (0, 0), (len(pairs), len(working_access))
    return len(pairs)


def test_logins_in_flight_during_a_password_change_get_no_working_token(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    def old_password_login() -> Response:
        return client.post(TOKEN, data={"username": user.email, "password": PASSWORD})

    def change() -> Response:
        body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        return client.post(CHANGE, json=body, headers=user.headers)

    responses = race([old_password_login] * RACERS, change)
    assert assert_no_token_works(client, responses) > 0
    # The new password works, and so do its tokens (once the old password's failures, which
    # lock this address out of the account, are forgotten).
    with db_engine.begin() as connection:
        connection.execute(delete(LoginFailure))
    fresh = login(client, user.email, NEW_PASSWORD)
    assert client.get(ME, headers=bearer(str(fresh["access_token"]))).status_code == 200


def test_refreshes_in_flight_during_a_password_change_get_no_working_token(
    client: TestClient, user: ApiUser
) -> None:
    refresh_tokens = [str(login(client, user.email)["refresh_token"]) for _ in range(RACERS // 2)]

    def rotate(token: str) -> Callable[[], Response]:
        return lambda: client.post(REFRESH, json={"refresh_token": token})

    def change() -> Response:
        body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        return client.post(CHANGE, json=body, headers=user.headers)

    responses = race([rotate(token) for token in refresh_tokens], change)
    assert assert_no_token_works(client, responses) > 0


def test_logins_in_flight_during_a_deactivation_get_no_working_token(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    admin = make_user(client)
    with db_engine.begin() as connection:
        connection.execute(
            update(User).where(User.id == uuid.UUID(admin.id)).values(is_superuser=True)
        )

    def login_racer() -> Response:
        return client.post(TOKEN, data={"username": user.email, "password": PASSWORD})

    def deactivate() -> Response:
        return client.patch(
            f"/api/v1/users/{user.id}", json={"is_active": False}, headers=admin.headers
        )

    responses = race([login_racer] * RACERS, deactivate)
    assert assert_no_token_works(client, responses) > 0
    # Reactivated, the user logs in again, but the tokens of before stay dead.
    reactivated = client.patch(
        f"/api/v1/users/{user.id}", json={"is_active": True}, headers=admin.headers
    )
    assert reactivated.status_code == 200
    assert_no_token_works(client, responses)
    assert client.get(ME, headers=user.headers).status_code == 401
    fresh = login(client, user.email)
    assert client.get(ME, headers=bearer(str(fresh["access_token"]))).status_code == 200


def test_a_login_whose_verified_hash_was_replaced_meanwhile_issues_nothing(
    settings: Settings, db_engine: Engine
) -> None:
    """Deterministic: the stored hash costs about a second to check (cost 14), and the
    password changes in the database (as another replica would commit it) during that
    second. The login verified the old password correctly, yet gets no token at all."""
    slow = settings.model_copy(update={"bcrypt_rounds": 14})
    try:
        with TestClient(create_app(slow)) as client, ThreadPoolExecutor(1) as pool:
            user = make_user(client)
            with db_engine.connect() as connection:
                tokens_before = connection.scalar(select(func.count(RefreshToken.id)))
            pending = pool.submit(
                client.post, TOKEN, data={"username": user.email, "password": PASSWORD}
            )
            time.sleep(0.4)  # the login has read the user and is inside bcrypt now
            assert not pending.done()
            with db_engine.begin() as connection:
                connection.execute(
                    update(User)
                    .where(User.id == uuid.UUID(user.id))
                    .values(
                        hashed_password="$2b$04$" + "x" * 53,
                        credential_generation=User.credential_generation + 1,
                    )
                )
            response = pending.result()
            assert response.status_code == 401, response.text
            assert response.json() == {"detail": "Incorrect email or password"}
            with db_engine.connect() as connection:
                assert connection.scalar(select(func.count(RefreshToken.id))) == tokens_before
    finally:
        empty_tables(db_engine)
