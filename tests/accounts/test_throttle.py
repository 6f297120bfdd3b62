"""Login throttling: LOGIN_MAX_FAILURES failures for one email within LOGIN_WINDOW_SECONDS → 429.

The count lives in the database (login_failures), so these tests read and age it there.
"""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import Engine, func, select, update

from app.accounts.models import LoginFailure
from app.config import Settings
from app.main import create_app
from tests.accounts.helpers import TOKEN, WINDOW, assert_throttled
from tests.conftest import PASSWORD, ApiUser, make_user

BAD_CREDENTIALS = {"detail": "Incorrect email or password"}
WRONG_PASSWORD = "not-the-password"
MAX_FAILURES = 5


def attempt(client: TestClient, email: str, password: str = WRONG_PASSWORD) -> Response:
    return client.post(TOKEN, data={"username": email, "password": password})


def fail(client: TestClient, email: str, times: int = MAX_FAILURES) -> list[Response]:
    responses = [attempt(client, email) for _ in range(times)]
    for response in responses:
        assert response.status_code == 401, response.text
        assert response.json() == BAD_CREDENTIALS
    return responses


def failure_count(db_engine: Engine, email: str | None = None) -> int:
    query = select(func.count()).select_from(LoginFailure)
    if email is not None:
        query = query.where(LoginFailure.email == email)
    with db_engine.connect() as connection:
        return connection.scalar(query) or 0


def age_failures(db_engine: Engine, seconds: float) -> None:
    """Move every recorded failure `seconds` into the past (aware UTC values, bound as such)."""
    with db_engine.begin() as connection:
        rows = connection.execute(select(LoginFailure.id, LoginFailure.failed_at)).all()
        assert rows
        for row_id, failed_at in rows:
            assert failed_at.utcoffset() == timedelta(0)
            connection.execute(
                update(LoginFailure)
                .where(LoginFailure.id == row_id)
                .values(failed_at=failed_at - timedelta(seconds=seconds))
            )


def test_sixth_attempt_is_429_even_with_the_right_password(
    client: TestClient, user: ApiUser
) -> None:
    fail(client, user.email)

    sixth = attempt(client, user.email)
    assert assert_throttled(sixth) >= WINDOW - 5
    right = attempt(client, user.email, PASSWORD)
    assert_throttled(right)
    assert "access_token" not in right.text


def test_unknown_email_is_throttled_exactly_like_a_registered_one(
    client: TestClient, user: ApiUser
) -> None:
    unknown = f"never-registered-{uuid.uuid4().hex[:8]}@example.com"
    known_failures = fail(client, user.email)
    unknown_failures = fail(client, unknown)
    for known_response, unknown_response in zip(known_failures, unknown_failures, strict=True):
        assert known_response.content == unknown_response.content
        assert known_response.headers["www-authenticate"] == "Bearer"
        assert unknown_response.headers["www-authenticate"] == "Bearer"

    known_locked = attempt(client, user.email)
    unknown_locked = attempt(client, unknown)
    assert abs(assert_throttled(known_locked) - assert_throttled(unknown_locked)) <= 2
    assert known_locked.json() == unknown_locked.json()
    assert set(known_locked.headers) == set(unknown_locked.headers)
    assert_throttled(attempt(client, unknown, PASSWORD))


def test_throttle_key_ignores_the_case_of_the_email(client: TestClient) -> None:
    user = make_user(client, email="Foo@Example.com")
    assert user.email == "foo@example.com"
    for variant in ["Foo@Example.com", "FOO@EXAMPLE.COM", "foo@EXAMPLE.com", "fOO@example.COM"]:
        fail(client, variant, times=1)
    fail(client, "Foo@Example.com", times=1)

    assert_throttled(attempt(client, "foo@example.com", PASSWORD))
    assert_throttled(attempt(client, "FOO@example.com", PASSWORD))


def test_failures_are_stored_under_the_lower_cased_email(
    client: TestClient, db_engine: Engine
) -> None:
    make_user(client, email="Mixed.Case@Example.com")
    fail(client, "MIXED.case@example.COM")
    assert failure_count(db_engine, "mixed.case@example.com") == MAX_FAILURES
    assert failure_count(db_engine) == MAX_FAILURES


def test_other_emails_are_not_affected(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    fail(client, user.email)
    assert_throttled(attempt(client, user.email, PASSWORD))

    response = attempt(client, other_user.email, PASSWORD)
    assert response.status_code == 200, response.text
    assert set(response.json()) >= {"access_token", "refresh_token"}
    stranger = attempt(client, "someone-else@example.com")
    assert stranger.status_code == 401
    assert stranger.json() == BAD_CREDENTIALS
    assert_throttled(attempt(client, user.email, PASSWORD))


def test_a_successful_login_resets_the_count(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    fail(client, user.email, times=MAX_FAILURES - 1)
    assert attempt(client, user.email, PASSWORD).status_code == 200
    assert failure_count(db_engine, user.email) == 0

    fail(client, user.email, times=MAX_FAILURES - 1)
    assert attempt(client, user.email, PASSWORD).status_code == 200


def test_the_lock_lifts_once_the_window_has_passed(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    fail(client, user.email)
    assert_throttled(attempt(client, user.email, PASSWORD))

    age_failures(db_engine, WINDOW + 60)
    response = attempt(client, user.email, PASSWORD)
    assert response.status_code == 200, response.text
    assert set(response.json()) >= {"access_token", "refresh_token"}


def test_failures_that_left_the_window_no_longer_count(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    fail(client, user.email, times=MAX_FAILURES - 1)
    age_failures(db_engine, WINDOW + 60)
    fail(client, user.email, times=MAX_FAILURES - 1)
    assert attempt(client, user.email, PASSWORD).status_code == 200


def test_the_lock_lifts_in_real_time_with_a_short_window(
    client: TestClient, settings: Settings
) -> None:
    app = create_app(settings.model_copy(update={"login_window_seconds": 2}))
    with TestClient(app) as short:
        user = make_user(short)
        fail(short, user.email)
        assert_throttled(attempt(short, user.email, PASSWORD), window=2)
        time.sleep(2.5)
        response = attempt(short, user.email, PASSWORD)
    assert response.status_code == 200, response.text


def test_retry_after_is_the_time_left_in_the_window(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    fail(client, user.email)
    age_failures(db_engine, 600)
    retry_after = assert_throttled(attempt(client, user.email, PASSWORD))
    assert abs(retry_after - (WINDOW - 600)) <= 5


def test_failures_persist_although_each_one_is_a_401(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    fail(client, user.email)
    assert failure_count(db_engine, user.email) == MAX_FAILURES
    assert failure_count(db_engine) == MAX_FAILURES


def test_parallel_guesses_cannot_slip_past_the_limit(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(attempt, client, user.email) for _ in range(20)]
        responses = [future.result() for future in futures]

    statuses = sorted(response.status_code for response in responses)
    assert 500 not in statuses, statuses
    assert set(statuses) <= {401, 429}, statuses
    assert 1 <= statuses.count(401) <= MAX_FAILURES, statuses
    assert statuses.count(401) + statuses.count(429) == 20, statuses
    for response in responses:
        if response.status_code == 429:
            assert_throttled(response)
        else:
            assert response.json() == BAD_CREDENTIALS
    assert failure_count(db_engine, user.email) == statuses.count(401)
    assert_throttled(attempt(client, user.email, PASSWORD))


def test_max_failures_follows_the_setting(
    client: TestClient, settings: Settings, db_engine: Engine
) -> None:
    app = create_app(settings.model_copy(update={"login_max_failures": 3}))
    with TestClient(app) as strict:
        user = make_user(strict)
        fail(strict, user.email, times=3)
        assert_throttled(attempt(strict, user.email))
        assert_throttled(attempt(strict, user.email, PASSWORD))
    assert failure_count(db_engine, user.email) == 3


def test_no_lock_while_under_the_limit(client: TestClient, user: ApiUser) -> None:
    fail(client, user.email, times=MAX_FAILURES - 1)
    response = attempt(client, user.email, PASSWORD)
    assert response.status_code == 200, response.text
