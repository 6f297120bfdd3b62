"""The login throttle holds across gunicorn workers: its state is in the database."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import PASSWORD, TempPostgres, postgres_admin_url
from tests.runtime.server import Server, app_env, gunicorn

pytestmark = pytest.mark.postgres  # each test makes its own database

WORKERS = 3
UNTRUSTED_WARNING = "X-Forwarded-For ignored"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    database = TempPostgres.create(postgres_admin_url(), role="runtime")
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


def _guess(server: Server, email: str, password: str, forwarded_for: str) -> httpx.Response:
    with server.client() as client:
        return client.post(
            "/api/v1/auth/token",
            data={"username": email, "password": password},
            headers={"X-Forwarded-For": forwarded_for},
        )


def _register(server: Server, email: str) -> None:
    with server.client() as client:
        response = client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text


def test_a_trusted_proxy_s_client_address_is_the_one_throttled(server: Server) -> None:
    # The default FORWARDED_ALLOW_IPS trusts the loopback, where these requests come from:
    # X-Forwarded-For names the client, as a reverse proxy on the same host would send it.
    email = "behind-proxy@example.com"
    _register(server, email)
    for _ in range(5):
        assert _guess(server, email, "wrong-password", "203.0.113.7").status_code == 401
    assert _guess(server, email, PASSWORD, "203.0.113.7").status_code == 429
    # The owner, another client of the same proxy, still logs in.
    assert _guess(server, email, PASSWORD, "198.51.100.9").status_code == 200
    # A trusted proxy's header is no cause for a warning.
    assert UNTRUSTED_WARNING not in server.log()


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(tmp_path: Path) -> None:
    database = TempPostgres.create(postgres_admin_url(), role="runtime")
    env = app_env(database.url, tmp_path, FORWARDED_ALLOW_IPS="192.0.2.1")
    try:
        with gunicorn(env, tmp_path, workers=2) as server:
            email = "no-proxy@example.com"
            _register(server, email)
            # Each guess claims another address; the peer (the loopback) is what counts.
            for n in range(5):
                assert _guess(server, email, "wrong-password", f"10.0.0.{n}").status_code == 401
            assert _guess(server, email, PASSWORD, "10.0.0.99").status_code == 429
    finally:
        database.drop()


def test_x_forwarded_for_from_an_untrusted_peer_is_warned_about_once(tmp_path: Path) -> None:
    """A proxy left out of FORWARDED_ALLOW_IPS makes every client share its address: the
    operator hears of it, once an hour per process, not once per request."""
    database = TempPostgres.create(postgres_admin_url(), role="runtime")
    env = app_env(database.url, tmp_path, FORWARDED_ALLOW_IPS="192.0.2.1")
    try:
        with gunicorn(env, tmp_path, workers=1) as server:
            with server.client() as client:
                assert client.get("/health").status_code == 200
            assert UNTRUSTED_WARNING not in server.log()
            for n in range(5):
                _guess(server, "anyone@example.com", "wrong-password", f"10.0.0.{n}")
            log = server.log()
    finally:
        database.drop()
    assert log.count(UNTRUSTED_WARNING) == 1, log
    warning = next(line for line in log.splitlines() if UNTRUSTED_WARNING in line)
    assert "127.0.0.1" in warning  # names the peer to add to FORWARDED_ALLOW_IPS
    assert "10.0.0." not in warning  # not what the header claims
