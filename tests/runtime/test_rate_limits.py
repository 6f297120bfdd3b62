"""The rate limits through real gunicorn (2 workers) sharing one real Redis, on SQLite and
PostgreSQL: every worker counts against the same quota, exactly, and a refused write does
nothing."""

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import PASSWORD
from tests.runtime.server import Server, app_env, gunicorn

QUOTA = 20
REMAINING = re.compile(r'"user";r=(\d+);t=\d+')


@pytest.fixture
def server(empty_database_url: str, redis: Any, tmp_path: Path) -> Iterator[Server]:
    redis.flush()
    env = app_env(
        empty_database_url,
        tmp_path,
        RATE_LIMIT_STORAGE=redis.url,
        RATE_LIMIT_USER=f"{QUOTA}/minute",
    )
    with gunicorn(env, tmp_path, workers=2) as running:
        yield running


def _request(
    base_url: str, method: str, path: str, headers: dict[str, str], **kw: Any
) -> httpx.Response:
    # A connection per request: the requests spread over both workers.
    with httpx.Client(base_url=base_url, timeout=30) as client:
        return client.request(method, path, headers=headers, **kw)


def test_both_workers_count_against_one_quota(server: Server, empty_database_url: str) -> None:
    with server.client() as client:
        email = "quota@example.com"
        assert (
            client.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
            ).status_code
            == 201
        )
        token = client.post(
            "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
        ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda _: _request(server.base_url, "GET", "/api/v1/todos", headers),
                range(QUOTA + 10),
            )
        )

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * QUOTA + [429] * 10
    # Exactly QUOTA let through over both workers: one counter, not one per worker (memory://
    # would let up to 2 x QUOTA through). `r` is read just after the count, so concurrent
    # requests may see each other's: never more than what is left, and 0 at the end.
    left = [
        int(REMAINING.fullmatch(a.headers["ratelimit"])[1]) for a in answers if a.status_code == 200
    ]  # type: ignore[index]
    assert all(0 <= n < QUOTA for n in left)
    assert min(left) == 0
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers if a.status_code == 429)

    refused = _request(server.base_url, "POST", "/api/v1/todos", headers, json={"title": "no"})
    assert refused.status_code == 429
    engine = create_engine(empty_database_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM todos")).scalar_one() == 0
    finally:
        engine.dispose()
