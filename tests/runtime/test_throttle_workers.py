"""The login throttle holds across gunicorn workers: its state is in the database."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import PASSWORD, TempPostgres, postgres_admin_url
from tests.runtime.server import Server, app_env, gunicorn

WORKERS = 3


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    database = TempPostgres.create(postgres_admin_url(), prefix="todo_runtime")
    try:
        with gunicorn(app_env(database.url, tmp_path), tmp_path, workers=WORKERS) as running:
            yield running
    finally:
        database.drop()


def _login(base_url: str, email: str, password: str) -> httpx.Response:
    # A new connection per attempt, so the attempts are spread over the workers.
    with httpx.Client(base_url=base_url, timeout=30) as client:
        return client.post("/api/v1/auth/token", data={"username": email, "password": password})


def test_failures_spread_over_workers_lock_the_email(server: Server) -> None:
    email = "spread@example.com"
    with server.client() as client:
        registered = client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 201

    with ThreadPoolExecutor(5) as pool:
        failures = list(
            pool.map(lambda _: _login(server.base_url, email, "wrong-password"), range(5))
        )
    assert [r.status_code for r in failures] == [401] * 5

    # Had each worker counted on its own, 5 failures over 3 workers would leave every worker
    # under the limit, and the right password would get through on some of these.
    with ThreadPoolExecutor(2 * WORKERS) as pool:
        after = list(
            pool.map(lambda _: _login(server.base_url, email, PASSWORD), range(2 * WORKERS))
        )
    assert [r.status_code for r in after] == [429] * (2 * WORKERS)
    assert all(1 <= int(r.headers["retry-after"]) <= 900 for r in after)
