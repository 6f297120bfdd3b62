"""Each worker's hashing queue is bounded (HASH_QUEUE_LIMIT): past it, a login, a sign-up or a
password change is 503 with Retry-After at once, instead of waiting behind a flood.

Real bcrypt: the app hashes at cost 14 here (about a second per check), so a couple of
logins for unknown emails (checked against a dummy hash at that cost) fill a queue of 2.
"""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import Engine, func, select

from app.accounts.models import LoginFailure
from app.config import Settings
from app.main import create_app
from tests.conftest import PASSWORD, empty_tables, make_user

LIMIT = 2
TOKEN = "/api/v1/auth/token"


def unknown_login(client: TestClient) -> Response:
    email = f"flood-{uuid.uuid4().hex[:10]}@example.com"
    return client.post(TOKEN, data={"username": email, "password": "some-password"})


def assert_busy(response: Response) -> None:
    assert response.status_code == 503, response.text
    assert set(response.json()) == {"detail"}
    assert response.headers["retry-after"] == "1"


def test_a_full_hashing_queue_answers_503_at_once(
    client: TestClient, settings: Settings, db_engine: Engine
) -> None:
    # The user's hash is made at the fixtures' cost; the app below checks it at that cost too.
    user = make_user(client)
    slow = settings.model_copy(update={"bcrypt_rounds": 14, "hash_queue_limit": LIMIT})
    with TestClient(create_app(slow)) as flooded, ThreadPoolExecutor(LIMIT) as pool:
        filling = [pool.submit(unknown_login, flooded) for _ in range(LIMIT)]
        time.sleep(0.5)  # both are with the hashing thread now (each takes about a second)
        assert not any(future.done() for future in filling), "the queue drained too soon"

        started = time.monotonic()
        turned_away = [
            unknown_login(flooded),
            flooded.post(TOKEN, data={"username": user.email, "password": PASSWORD}),
            flooded.post(
                "/api/v1/auth/register",
                json={"email": f"new-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD},
            ),
            flooded.post(
                "/api/v1/users/me/password",
                json={"current_password": PASSWORD, "new_password": "new-staple-horse-battery"},
                headers=user.headers,
            ),
        ]
        refused_in = time.monotonic() - started
        assert not all(future.done() for future in filling), "the queue drained meanwhile"
        for response in turned_away:
            assert_busy(response)
        assert [future.result().status_code for future in filling] == [401] * LIMIT
    # At once: not after the queue's seconds of bcrypt.
    assert refused_in < 0.5 * len(turned_away), refused_in
    # A refused login is no failed login: only the two that were checked count.
    with db_engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(LoginFailure)) == LIMIT
    # Nothing changed for the user: the old password still logs in.
    response = client.post(TOKEN, data={"username": user.email, "password": PASSWORD})
    assert response.status_code == 200, response.text


def test_the_queue_frees_up_once_the_flood_is_over(settings: Settings, db_engine: Engine) -> None:
    slow = settings.model_copy(update={"bcrypt_rounds": 12, "hash_queue_limit": LIMIT})
    try:
        with TestClient(create_app(slow)) as flooded, ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: unknown_login(flooded).status_code, range(8)))
            assert set(statuses) <= {401, 503}, statuses
            assert 503 in statuses, statuses
            # Sequential requests never find the queue full.
            assert [unknown_login(flooded).status_code for _ in range(3)] == [401] * 3
    finally:
        empty_tables(db_engine)  # this test uses no `client`, which would do it


def test_the_limit_defaults_to_32() -> None:
    assert Settings(_env_file=None).hash_queue_limit == 32
