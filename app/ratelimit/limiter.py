"""The verdicts: count a request against its key (in Redis: redis_windows.py, one round trip,
shared by the checks a worker has in flight at once: coalescing.py; in memory: `limits`'
strategy), fail open.

The algorithm is `limits`' sliding window counter: per key and window two counters (this
window's and the previous one's), and a request is let through while
previous x (the share of the previous window still inside the sliding window) + current
stays under the quota. Unlike a fixed window it allows no burst of twice the quota across a
window edge; unlike the moving window (a timestamp per request) it costs two small counters
per key, whatever the quota. It assumes the previous window's requests were spread evenly,
so in any exact window it may admit a little more or less than the quota.

The storage may be missing or hanging. A failed or slow (TIMEOUT_SECONDS) check lets the
request through uncounted, counts a miss (the rate_limit_storage_misses_total metric), logs a
warning at most once a minute per process, and the next PAUSE_SECONDS skip the storage
altogether: a hanging Redis then costs one request per pause per process one short timeout,
never every request. After the pause the next request tries again: counting resumes by itself.
Coalesced checks keep to this: each waits at most TIMEOUT_SECONDS, a failed round trip fails
every request of its batch (and those queued behind it), and each of them counts its miss.
"""

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from prometheus_client import Counter

from app.config import Settings
from app.ratelimit.coalescing import Coalescer
from app.ratelimit.redis_windows import RedisWindows, Window

logger = logging.getLogger(__name__)

# A local Redis answers in well under a millisecond; a check slower than this is a storage
# in trouble, and the request is better served uncounted than held.
TIMEOUT_SECONDS = 0.25
PAUSE_SECONDS = 1.0
WARNING_INTERVAL_SECONDS = 60.0
# Labelled, so that no process has a file of it (multiprocess mode) before its first miss:
# gunicorn's master imports this module too, and serves no request.
MISSES = Counter(
    "rate_limit_storage_misses_total",
    "Requests served without a rate-limit check: the storage failed, or was skipped after that",
    ["reason"],
)
MEMORY_WARNING = (
    "RATE_LIMIT_STORAGE is memory://: each worker process counts on its own, so with several "
    "workers or replicas a client gets up to that many times its quota; set a redis:// URL"
)


@dataclass(frozen=True, slots=True)
class Policy:
    name: str  # "user" or "address": the policy's name in the RateLimit fields
    items: tuple[RateLimitItem, ...]


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    policy: str
    quota: int
    window: int  # seconds
    remaining: int
    reset: int  # whole seconds until the quota is back (≥ 1 when refused)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The draft-ietf-httpapi-ratelimit-headers-11 fields, plus Retry-After on a refusal."""
        fields = [
            (b"ratelimit-policy", _policy_field(self.policy, self.quota, self.window)),
            (b"ratelimit", f'"{self.policy}";r={self.remaining};t={self.reset}'.encode()),
        ]
        if not self.allowed:
            fields.append((b"retry-after", str(max(1, self.reset)).encode()))
        return fields


@lru_cache(maxsize=16)  # a few limits per policy, the same on every response
def _policy_field(policy: str, quota: int, window: int) -> bytes:
    return f'"{policy}";q={quota};w={window}'.encode()


def parse_limits(value: str) -> tuple[RateLimitItem, ...]:
    """RATE_LIMIT_USER / RATE_LIMIT_ADDRESS: "N/second|minute|hour|day" joined by ";"."""
    items = tuple(parse_many(value))
    if not items or any(item.amount < 1 for item in items):
        raise ValueError(f"{value!r} is not N/second|minute|hour|day (N ≥ 1) joined by ';'")
    return items


def storage_uri(value: str) -> str:
    """RATE_LIMIT_STORAGE as `limits` names its asyncio storages."""
    return value if value.startswith("async+") else f"async+{value}"


class Limiter:
    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        uri = storage_uri(settings.rate_limit_storage)
        self.in_memory = uri.startswith("async+memory")
        # redis-py's asyncio client (the `redis` package), with short socket timeouts: the
        # check as a whole is bounded by TIMEOUT_SECONDS anyway (check()).
        options: dict[str, float | str | bool] = (
            {}
            if self.in_memory
            else {
                "implementation": "redispy",
                "socket_timeout": TIMEOUT_SECONDS,
                "socket_connect_timeout": TIMEOUT_SECONDS,
            }
        )
        self.storage = storage_from_string(uri, **options)
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)
        self.user = Policy("user", parse_limits(settings.rate_limit_user))
        self.address = Policy("address", parse_limits(settings.rate_limit_address))
        cluster = uri.startswith("async+redis+cluster")
        # In Redis, by policy name; None: counted in memory by `limits`.
        self.windows = (
            {
                policy.name: RedisWindows(self.storage, cluster, policy.name, policy.items)
                for policy in (self.user, self.address)
            }
            if isinstance(self.storage, RedisStorage)
            else None
        )
        # Concurrent checks share round trips, but not in a Cluster (coalescing.py says why).
        self.coalescer = (
            Coalescer(self.windows["user"].script, TIMEOUT_SECONDS)
            if self.windows is not None and not cluster
            else None
        )
        self.clock = clock
        self.paused_until = -math.inf
        self.last_warning: float | None = None

    async def check(self, policy: Policy, key: str) -> Verdict | None:
        """The verdict for one more request of `key`, counted; None when the storage could not
        say (the request goes through uncounted)."""
        if self.clock() < self.paused_until:
            MISSES.labels("paused").inc()
            return None
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                return await self._count(policy, key)
        except Exception as exc:  # any storage failure: refused, reset, timed out, an error reply
            self._miss(exc)
            return None

    async def _count(self, policy: Policy, key: str) -> Verdict:
        # Every item must hold; the first that refuses decides (those before it have counted
        # this request, which a refused client cannot use anyway).
        if self.coalescer is not None and self.windows is not None:
            windows = await self.coalescer.acquire(self.windows[policy.name], key)
        elif self.windows is not None:
            windows = await self.windows[policy.name].acquire(key)
        else:
            windows = await self._count_in_memory(policy, key)
        verdicts = []
        for item, (allowed, remaining, reset_in) in zip(policy.items, windows, strict=False):
            reset = max(0, math.ceil(reset_in))
            verdict = Verdict(
                allowed,
                policy.name,
                item.amount,
                item.get_expiry(),
                0 if not allowed else remaining,
                max(1, reset) if not allowed else reset,
            )
            if not allowed:
                return verdict
            verdicts.append(verdict)
        # The fields name the policy closest to refusing (parse_limits returns one at least).
        return min(verdicts, key=lambda verdict: (verdict.remaining, verdict.window))

    async def _count_in_memory(self, policy: Policy, key: str) -> list[Window]:
        """As RedisWindows.acquire, with `limits`' own calls (no round trip to save here)."""
        found = []
        for item in policy.items:
            allowed = await self.strategy.hit(item, policy.name, key)
            stats = await self.strategy.get_window_stats(item, policy.name, key)
            found.append((allowed, stats.remaining, stats.reset_time - time.time()))
            if not allowed:
                break
        return found

    def _miss(self, exc: Exception) -> None:
        MISSES.labels("failed").inc()
        now = self.clock()
        self.paused_until = now + PAUSE_SECONDS
        if self.last_warning is not None and now - self.last_warning < WARNING_INTERVAL_SECONDS:
            return
        self.last_warning = now
        logger.warning(
            "Rate-limit storage unavailable (%s: %s): requests are served without counting "
            "until it answers again. (Logged at most once a minute per process.)",
            type(exc).__name__,
            exc,
        )

    async def close(self) -> None:
        if self.coalescer is not None:
            await self.coalescer.close()
        if not self.in_memory:
            # redis-py's client: close its connection pool with the worker.
            client = getattr(getattr(self.storage, "bridge", None), "storage", None)
            if client is not None:
                await client.aclose()
