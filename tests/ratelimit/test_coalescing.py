"""A worker's concurrent checks share round trips (app/ratelimit/coalescing.py), against a
real Redis: exact counts and the right fields for each request, several keys and both
policies in one batch, the batch seen from Redis as one EVALSHA, and the faults (Redis
frozen or killed with a batch in flight and more queued; a waiter that stops waiting)."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest
import redis as redis_py

from app.ratelimit.coalescing import BATCH_LIMIT
from app.ratelimit.limiter import MISSES, PAUSE_SECONDS, TIMEOUT_SECONDS, Limiter, Verdict
from tests.support.settings import app_settings

pytestmark = pytest.mark.anyio

# Redis holds every client's commands this long (CLIENT PAUSE): a batch stays in flight while
# more checks queue behind it, well within the checks' timeout.
HELD_MS = 150


class Clock:
    """The limiter's clock (its pause after a failure), moved on by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def admin(redis: Any) -> Iterator["redis_py.Redis[bytes]"]:
    redis.flush()
    with redis_py.Redis.from_url(redis.url) as client:
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def limiter(redis: Any, clock: Clock) -> AsyncIterator[Limiter]:
    settings = app_settings(
        "sqlite://",
        rate_limit_storage=redis.url,
        rate_limit_user="10/minute",
        rate_limit_address="2/minute;5/hour",
    )
    found = Limiter(settings, clock=clock)
    # The script's first run loads it into this Redis (a NOSCRIPT, then EVALSHA again).
    assert await found.check(found.user, "warm-up") is not None
    try:
        yield found
    finally:
        await found.close()


def evalsha_since_reset(admin: "redis_py.Redis[bytes]") -> int:
    found: dict[str, Any] = admin.info("commandstats").get("cmdstat_evalsha", {})
    return int(found.get("calls", 0))


def window_count(admin: "redis_py.Redis[bytes]", policy: str, key: str, limit: str) -> int:
    amount, _, period = limit.partition("/")
    return int(admin.get(f"LIMITS:{{LIMITER/{policy}/{key}/{amount}/1/{period}}}") or 0)


def misses() -> float:
    return sum(MISSES.labels(reason)._value.get() for reason in ("failed", "paused"))


async def checks(limiter: Limiter, keys: list[str], policy: str = "user") -> list[Verdict | None]:
    chosen = limiter.user if policy == "user" else limiter.address
    return list(await asyncio.gather(*(limiter.check(chosen, key) for key in keys)))


async def test_one_key_checked_at_once_admits_exactly_the_quota(
    limiter: Limiter, admin: "redis_py.Redis[bytes]"
) -> None:
    admin.config_resetstat()
    verdicts = await checks(limiter, ["u1"] * 40)
    assert all(v is not None for v in verdicts)
    allowed = [v for v in verdicts if v is not None and v.allowed]
    refused = [v for v in verdicts if v is not None and not v.allowed]
    # Counted one after another in arrival order: the first ten are let through, each seeing
    # the count just after its own.
    assert [v.remaining for v in allowed] == list(range(9, -1, -1))
    assert verdicts[:10] == allowed
    assert all(v.reset == 60 for v in allowed)  # the window opened with the first of them
    assert len(refused) == 30
    assert all((v.remaining, v.quota, v.window) == (0, 10, 60) for v in refused)
    assert all(1 <= v.reset <= 60 for v in refused)
    assert window_count(admin, "user", "u1", "10/minute") == 10
    assert evalsha_since_reset(admin) == 1  # all forty in one round trip


async def test_a_batch_holds_at_most_the_limit_and_the_rest_follows(
    limiter: Limiter, admin: "redis_py.Redis[bytes]"
) -> None:
    keys = [f"k{i}" for i in range(BATCH_LIMIT + 36)]
    admin.config_resetstat()
    verdicts = await checks(limiter, keys)
    assert [(v.allowed, v.remaining) for v in verdicts if v is not None] == [(True, 9)] * len(keys)
    assert evalsha_since_reset(admin) == 2


async def test_both_policies_and_several_keys_in_one_batch(
    limiter: Limiter, admin: "redis_py.Redis[bytes]"
) -> None:
    admin.config_resetstat()
    user_a = [limiter.check(limiter.user, "a") for _ in range(12)]
    address = [limiter.check(limiter.address, "192.0.2.1") for _ in range(4)]
    user_b = [limiter.check(limiter.user, "b") for _ in range(3)]
    verdicts = await asyncio.gather(*user_a, *address, *user_b)
    assert evalsha_since_reset(admin) == 1

    def seen(found: Sequence[Verdict | None]) -> list[tuple[str, bool, int, int]]:
        return [(v.policy, v.allowed, v.remaining, v.quota) for v in found if v is not None]

    assert (
        seen(verdicts[:12])
        == [("user", True, n, 10) for n in range(9, -1, -1)] + [("user", False, 0, 10)] * 2
    )
    # The fields name the tighter limit (2 a minute); the refused requests stop at it, and the
    # hour's limit does not count them.
    assert seen(verdicts[12:16]) == [
        ("address", True, 1, 2),
        ("address", True, 0, 2),
        ("address", False, 0, 2),
        ("address", False, 0, 2),
    ]
    assert seen(verdicts[16:]) == [("user", True, n, 10) for n in (9, 8, 7)]
    assert window_count(admin, "address", "192.0.2.1", "2/minute") == 2
    assert window_count(admin, "address", "192.0.2.1", "5/hour") == 2
    assert window_count(admin, "user", "b", "10/minute") == 3


async def test_a_waiter_that_stops_waiting_leaves_the_others_their_answers(
    limiter: Limiter, admin: "redis_py.Redis[bytes]"
) -> None:
    admin.client_pause(HELD_MS)  # the first batch stays in flight
    in_flight = [asyncio.create_task(limiter.check(limiter.user, "u1")) for _ in range(4)]
    await asyncio.sleep(0.02)
    queued = [asyncio.create_task(limiter.check(limiter.user, "u1")) for _ in range(4)]
    await asyncio.sleep(0.02)
    in_flight[1].cancel()  # sent already: Redis counts it, nobody hears the answer
    queued[2].cancel()  # not sent yet: never counted
    done = await asyncio.gather(*in_flight, *queued, return_exceptions=True)

    assert isinstance(done[1], asyncio.CancelledError)
    assert isinstance(done[6], asyncio.CancelledError)
    answered = [v for i, v in enumerate(done) if i not in (1, 6)]
    assert all(isinstance(v, Verdict) and v.allowed for v in answered)
    # Seven counted: the cancelled one in flight was (it would have seen 8), the queued one not.
    assert [v.remaining for v in answered if isinstance(v, Verdict)] == [9, 7, 6, 5, 4, 3]
    assert window_count(admin, "user", "u1", "10/minute") == 7
    assert await limiter.check(limiter.user, "u1") is not None  # and the next one goes


@pytest.mark.parametrize("fault", ["frozen", "killed"])
async def test_a_batch_in_flight_when_redis_fails_is_served_uncounted_in_time(
    limiter: Limiter, redis: Any, admin: "redis_py.Redis[bytes]", clock: Clock, fault: str
) -> None:
    before = misses()
    try:
        if fault == "frozen":
            redis.freeze()  # accepts the batch, answers nothing
        else:
            admin.client_pause(5000)  # holds the batch until the kill
        started = time.monotonic()
        in_flight = asyncio.gather(*(limiter.check(limiter.user, f"f{i}") for i in range(16)))
        await asyncio.sleep(0.05)
        queued = asyncio.gather(*(limiter.check(limiter.address, f"q{i}") for i in range(16)))
        await asyncio.sleep(0.05)
        if fault == "killed":
            redis.kill()
        verdicts = [*await in_flight, *await queued]
        elapsed = time.monotonic() - started
    finally:
        if fault == "killed":
            redis.start()  # the same port, empty: the script must be loaded again
        else:
            redis.thaw()
    assert verdicts == [None] * 32
    assert elapsed < TIMEOUT_SECONDS + 0.15  # nobody held past the timeout (plus a margin)
    assert misses() - before == 32  # one per request
    # Paused: the next check does not ask Redis (a miss of its own, at once).
    assert await limiter.check(limiter.user, "f0") is None
    assert misses() - before == 33

    clock.now += PAUSE_SECONDS  # the pause is over: counting resumes by itself
    verdicts = await checks(limiter, ["after"] * 12)
    assert [v.remaining for v in verdicts if v is not None] == [*range(9, -1, -1), 0, 0]
    assert window_count(admin, "user", "after", "10/minute") == 10
