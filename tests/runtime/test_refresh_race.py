"""Concurrent refreshes of one token on the real thing: gunicorn with 2 workers on
PostgreSQL, each request on a connection of its own (so both workers take part). All of them
get a working pair (REFRESH_REUSE_GRACE_SECONDS); a logout then ends every one of them."""

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import PASSWORD, TempPostgres
from tests.runtime.server import Server, app_env, gunicorn

WORKERS = 2
RACERS = 12


@pytest.fixture
def server(database: TempPostgres, tmp_path: Path) -> Iterator[Server]:
    with gunicorn(app_env(database.url, tmp_path), tmp_path, workers=WORKERS) as running:
        yield running


def _post(base_url: str, path: str, **kwargs: object) -> httpx.Response:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        return client.post(path, **kwargs)  # type: ignore[arg-type]


def test_concurrent_refreshes_of_one_token_all_work_until_logout(server: Server) -> None:
    url = server.base_url
    email = "racer@example.com"
    registered = _post(url, "/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    tokens = _post(url, "/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    token = tokens.json()["refresh_token"]
    barrier = threading.Barrier(RACERS)

    def at_once(raw: str) -> httpx.Response:
        barrier.wait()
        return _post(url, "/api/v1/auth/refresh", json={"refresh_token": raw})

    with ThreadPoolExecutor(RACERS) as pool:
        responses = list(pool.map(at_once, [token] * RACERS))
    assert [r.status_code for r in responses] == [200] * RACERS, [r.text for r in responses]
    pairs = [r.json() for r in responses]
    assert len({p["refresh_token"] for p in pairs}) == RACERS

    # Every pair works: its access token, and its refresh token (itself concurrently).
    for pair in pairs:
        me = httpx.get(
            f"{url}/api/v1/users/me",
            headers={"Authorization": f"Bearer {pair['access_token']}"},
            timeout=30,
        )
        assert me.status_code == 200, me.text
    barrier = threading.Barrier(RACERS)
    with ThreadPoolExecutor(RACERS) as pool:
        rotated = list(pool.map(at_once, [p["refresh_token"] for p in pairs]))
    assert [r.status_code for r in rotated] == [200] * RACERS, [r.text for r in rotated]

    logout = _post(url, "/api/v1/auth/logout", json={"refresh_token": token})
    assert logout.status_code == 204
    every = [
        token,
        *(p["refresh_token"] for p in pairs),
        *(r.json()["refresh_token"] for r in rotated),
    ]
    for raw in every:
        after = _post(url, "/api/v1/auth/refresh", json={"refresh_token": raw})
        assert after.status_code == 401, after.text
