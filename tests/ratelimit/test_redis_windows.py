"""The check in Redis is one script (app/ratelimit/redis_windows.py) that must count as
`limits`' sliding window counter counts, on its keys: compared here with the library's own
hit() and get_window_stats() from the same window states (fresh, mid-window, at the window's
shift, full, refused by the previous window's weight), and seen from Redis as one command per
request."""

import math
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis as redis_py
from fastapi.testclient import TestClient
from limits import parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from app.config import Settings
from app.main import create_app
from app.ratelimit.limiter import Limiter
from app.ratelimit.redis_windows import RedisWindows
from tests.conftest import make_user
from tests.support.settings import app_settings

pytestmark = pytest.mark.anyio

QUOTA = "10/minute"
WINDOW = 60
# (previous count, its ttl in ms, current count, its ttl in ms), None for a key not there.
# The ttls end in 500 ms, so that the few ms between the two checks move no figure.
STATES = {
    "fresh": (None, None),
    "mid-window": (None, (3, 100_500)),
    "shifting": (None, (8, 30_500)),  # the current window is over: it becomes the previous one
    "full": (None, (10, 100_500)),
    "refused by the previous window": ((20, 45_500), (0, 105_500)),
    "both windows": ((6, 20_500), (2, 80_500)),
}


def redis_keys(user: str, quota: str = QUOTA) -> tuple[str, str]:
    """Where `limits` 5 keeps a sliding window: "{<item key>}" and its "/-1", under LIMITS:."""
    amount, _, period = quota.partition("/")
    current = f"LIMITS:{{LIMITER/user/{user}/{amount}/1/{period}}}"
    return f"{current}/-1", current


@pytest.fixture
async def limiter(redis: Any) -> AsyncIterator[Limiter]:
    redis.flush()
    settings = app_settings("sqlite://", rate_limit_storage=redis.url, rate_limit_user=QUOTA)
    found = Limiter(settings)
    try:
        yield found
    finally:
        await found.close()


def prepare(client: "redis_py.Redis[bytes]", user: str, state: tuple[Any, Any]) -> None:
    for name, window in zip(redis_keys(user), state, strict=True):
        if window is not None:
            client.set(name, window[0], px=window[1])


@pytest.mark.parametrize("state", list(STATES))
async def test_the_script_counts_as_the_library_does(
    limiter: Limiter, redis: Any, state: str
) -> None:
    item = parse_many(QUOTA)[0]
    storage = storage_from_string(f"async+{redis.url}", implementation="redispy")
    library = SlidingWindowCounterRateLimiter(storage)
    ours, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        with redis_py.Redis.from_url(redis.url) as client:
            prepare(client, ours, STATES[state])
            prepare(client, theirs, STATES[state])
            assert limiter.windows is not None
            [(allowed, remaining, reset_in)] = await limiter.windows["user"].acquire(ours)
            expected = await library.hit(item, "user", theirs)
            stats = await library.get_window_stats(item, "user", theirs)
            # The library's "0 s" when its two calls fell in the same ms: a window just opened
            # (it says 60 s when they did not; see redis_windows.window()).
            expected_reset = max(0, math.ceil(stats.reset_time - time.time())) or WINDOW
            assert (allowed, remaining, math.ceil(reset_in)) == (
                expected,
                stats.remaining,
                expected_reset,
            )
            # The same keys: the library reads what the script counted (so a replica of the
            # previous release, which runs the library's scripts, shares the count).
            assert (await library.get_window_stats(item, "user", ours)).remaining == remaining
            assert [client.get(name) for name in redis_keys(ours)] == [
                client.get(name) for name in redis_keys(theirs)
            ]
    finally:
        await storage.bridge.storage.aclose()  # type: ignore[attr-defined]


# In a Cluster (one script per limit: their keys are in different slots) as in one Redis.
@pytest.mark.parametrize("cluster", [False, True], ids=["one script", "one per limit"])
async def test_limits_are_counted_in_order_up_to_the_first_that_refuses(
    redis: Any, cluster: bool
) -> None:
    redis.flush()
    settings = app_settings("sqlite://", rate_limit_storage=redis.url)
    limiter = Limiter(settings)
    try:
        assert isinstance(limiter.storage, RedisStorage)
        items = parse_many("10/minute;2/hour;5/day")
        windows = RedisWindows(limiter.storage, cluster, "user", items)
        answers = [await windows.acquire("u1") for _ in range(3)]
    finally:
        await limiter.close()
    assert [[(allowed, remaining) for allowed, remaining, _ in a] for a in answers] == [
        [(True, 9), (True, 1), (True, 4)],
        [(True, 8), (True, 0), (True, 3)],
        [(True, 7), (False, 0)],  # the day's limit is not reached, and not counted
    ]
    with redis_py.Redis.from_url(redis.url) as client:
        assert client.get(redis_keys("u1", "5/day")[1]) == b"2"


def test_a_request_costs_one_command_in_redis(settings: Settings, redis: Any) -> None:
    redis.flush()
    limited = settings.model_copy(
        update={"rate_limit_storage": redis.url, "rate_limit_address": "100/minute;1000/hour"}
    )
    with (
        TestClient(create_app(limited)) as client,
        redis_py.Redis.from_url(redis.url) as admin,
    ):
        client.get("/api/v1/todos")  # the script's first run loads it into this Redis
        admin.config_resetstat()
        for _ in range(3):
            assert "ratelimit" in client.get("/api/v1/todos").headers
        user = make_user(client)
        assert "ratelimit" in client.get("/api/v1/todos", headers=user.headers).headers
        stats = admin.info("commandstats")
    sent = {name.removeprefix("cmdstat_"): found["calls"] for name, found in stats.items()}
    # Redis counts the commands a script runs too; none of them was sent by the app.
    for name in ("get", "pttl", "exists", "incrby", "set", "rename", "config|resetstat", "info"):
        sent.pop(name, None)
    # The three reads, the sign-up and log-in, and the authenticated read: six requests.
    assert sent == {"evalsha": 6}
