"""Redis killed, frozen and restarted under load, behind real gunicorn (2 workers): requests
are served (never a 5xx), uncounted and without the RateLimit fields while it is away, none is
held by a hanging Redis, a warning is logged at most once a minute per worker, a metric counts
the misses, and counting resumes by itself once it is back (API.md "Rate limits (v1.2)").
The load is concurrent enough that each worker's checks share round trips
(app/ratelimit/coalescing.py): the faults hit whole batches."""

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import redis as redis_py

from tests.conftest import PASSWORD
from tests.runtime.server import Server, app_env, gunicorn

pytestmark = pytest.mark.postgres  # the server's database is a fresh PostgreSQL one
WARNING = "Rate-limit storage unavailable"
THREADS = 16  # about 8 requests at once per worker


@dataclass
class Answer:
    started: float
    elapsed: float
    status: int
    counted: bool


class Load:
    """Client threads reading their todos until stopped, every answer recorded."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url, self.token = base_url, token
        self.answers: list[Answer] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(THREADS)]

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    response = client.get("/api/v1/todos", headers=headers)
                    status, counted = response.status_code, "ratelimit" in response.headers
                except httpx.TransportError:
                    status, counted = -1, False
                self.answers.append(Answer(started, time.monotonic() - started, status, counted))

    def since(self, moment: float) -> list[Answer]:
        return [a for a in list(self.answers) if a.started >= moment]

    def wait_for(self, counted: bool, timeout: float = 15) -> float:
        """Until an answer started from now on is (un)counted; when that answer started."""
        moment = time.monotonic()
        deadline = moment + timeout
        while time.monotonic() < deadline:
            found = [a for a in self.since(moment) if a.counted is counted]
            if found:
                return found[0].started
            time.sleep(0.05)
        raise AssertionError(f"no {'counted' if counted else 'uncounted'} answer in {timeout} s")


@pytest.fixture
def server(database: Any, redis: Any, tmp_path: Path) -> Iterator[Server]:
    redis.flush()
    env = app_env(
        database.url,
        tmp_path,
        RATE_LIMIT_STORAGE=redis.url,
        RATE_LIMIT_USER="1000000/minute",  # count, never refuse
    )
    with gunicorn(env, tmp_path, workers=2) as running:
        yield running


def misses(server: Server) -> float:
    with server.client() as client:
        text = client.get("/metrics").text
    found = re.findall(r'^rate_limit_storage_misses_total\{reason="\w+"\} ([0-9.e+]+)$', text, re.M)
    return sum(float(value) for value in found)


def round_trips_and_counted(redis: Any, load: Load) -> tuple[int, int]:
    """For a second of load: the EVALSHAs Redis ran, and the counted answers whose checks all
    fell in that second (each sent an EVALSHA of its own before coalescing)."""
    with redis_py.Redis.from_url(redis.url) as admin:
        admin.config_resetstat()
        moment = time.monotonic()
        time.sleep(1)
        read = time.monotonic()
        stats = admin.info("commandstats").get("cmdstat_evalsha", {})
    answers = [a for a in load.since(moment) if a.started + a.elapsed <= read]
    return int(stats.get("calls", 0)), sum(a.counted for a in answers)


def test_redis_killed_frozen_and_restarted_under_load(server: Server, redis: Any) -> None:
    with server.client() as client:
        email = "load@example.com"
        client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        token = client.post(
            "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
        ).json()["access_token"]
    load = Load(server.base_url, token)
    for thread in load.threads:
        thread.start()
    try:
        load.wait_for(counted=True)
        assert misses(server) == 0
        sent, counted = round_trips_and_counted(redis, load)
        assert sent < counted, (sent, counted)  # batches formed

        redis.kill()
        gone = load.wait_for(counted=False)
        time.sleep(1.5)
        away = load.since(gone)
        assert away
        assert all(not a.counted for a in away[THREADS:])  # those in flight may have counted

        redis.start()  # the same port: the app's URL is unchanged
        back = load.wait_for(counted=True)
        time.sleep(0.5)
        assert all(a.counted for a in load.since(back + 1.5))  # past the 1 s pause: all counted

        redis.freeze()  # accepts connections, answers nothing
        frozen = time.monotonic()
        time.sleep(2)
        hanging = load.since(frozen)
        redis.thaw()
        load.wait_for(counted=True)
    finally:
        load.stop.set()
        for thread in load.threads:
            thread.join()
        if redis.process is not None and redis.process.poll() is None:
            redis.thaw()  # a failed assertion must not leave it frozen for the next test

    assert [a for a in load.answers if a.status != 200] == []  # never a 5xx, never an error
    # A frozen Redis holds no request past the check's short timeout (0.25 s) by much, and
    # after the first miss each worker skips Redis for a second instead of waiting again.
    assert len(hanging) > 2 * THREADS
    assert max(a.elapsed for a in hanging) < 1.0
    assert sum(not a.counted for a in hanging) > THREADS
    assert misses(server) > 0
    warnings = server.log().count(WARNING)
    assert 1 <= warnings <= 2, server.log()  # once per worker: all this took under a minute
