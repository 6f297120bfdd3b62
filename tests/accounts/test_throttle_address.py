"""The throttle counts per (client address, email) and per client address.

An attacker elsewhere cannot lock the owner out (LOGIN_MAX_FAILURES is per address), and one
address cannot spray guesses over many emails (LOGIN_MAX_ADDRESS_FAILURES). The client address
is request.client, which TestClient sets here; behind a proxy, uvicorn fills it in from
X-Forwarded-For (tests/runtime/test_throttle_workers.py shows that with a real server).
"""

from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import Engine, select

from app.accounts.models import LoginFailure
from app.config import Settings
from tests.accounts.helpers import ATTACKER, OWNER, TOKEN, WRONG, assert_throttled, from_address
from tests.conftest import PASSWORD, ApiUser, make_user


def attempt(client: TestClient, email: str, password: str = WRONG) -> Response:
    return client.post(TOKEN, data={"username": email, "password": password})


def test_failures_from_one_address_do_not_lock_the_owner_out_elsewhere(
    client: TestClient, settings: Settings, user: ApiUser
) -> None:
    with from_address(settings, ATTACKER) as attacker, from_address(settings, OWNER) as owner:
        assert [attempt(attacker, user.email).status_code for _ in range(5)] == [401] * 5
        assert_throttled(attempt(attacker, user.email, PASSWORD))

        response = attempt(owner, user.email, PASSWORD)
        assert response.status_code == 200, response.text
        # The owner's success does not reset the attacker's count.
        assert_throttled(attempt(attacker, user.email, PASSWORD))


def test_failures_are_stored_with_the_client_address(
    client: TestClient, settings: Settings, user: ApiUser, db_engine: Engine
) -> None:
    with from_address(settings, ATTACKER) as attacker:
        assert attempt(attacker, user.email).status_code == 401
    with db_engine.connect() as connection:
        rows = connection.execute(select(LoginFailure.email, LoginFailure.client_address)).all()
    assert [tuple(row) for row in rows] == [(user.email, ATTACKER[0])]


def test_one_address_spraying_many_emails_is_throttled_for_all(
    client: TestClient, settings: Settings, user: ApiUser
) -> None:
    strict = settings.model_copy(update={"login_max_address_failures": 8})
    with from_address(strict, ATTACKER) as attacker, from_address(strict, OWNER) as owner:
        # Two guesses at each of four emails: under the per-email limit every time.
        for n in range(4):
            for _ in range(2):
                assert attempt(attacker, f"target-{n}@example.com").status_code == 401
        # Eight from this address in all: throttled for any email, a fresh one included,
        # and for a real user with the right password.
        assert_throttled(attempt(attacker, "never-tried@example.com"))
        assert_throttled(attempt(attacker, user.email, PASSWORD))
        # Another address is unaffected.
        assert attempt(owner, user.email, PASSWORD).status_code == 200


def test_the_address_limit_defaults_to_100(settings: Settings) -> None:
    assert Settings(_env_file=None).login_max_address_failures == 100
    assert Settings(_env_file=None).login_max_failures == 5


def test_the_address_limit_counts_failures_of_the_password_change_too(
    client: TestClient, settings: Settings
) -> None:
    strict = settings.model_copy(update={"login_max_address_failures": 3})
    with from_address(strict, ATTACKER) as attacker, from_address(strict, OWNER) as owner:
        victim = make_user(owner)
        body = {"current_password": WRONG, "new_password": "new-staple-horse-battery"}
        for _ in range(3):
            wrong = attacker.post("/api/v1/users/me/password", json=body, headers=victim.headers)
            assert wrong.status_code == 400, wrong.text
        assert_throttled(attempt(attacker, "someone@example.com"))
        assert attempt(owner, victim.email, PASSWORD).status_code == 200
