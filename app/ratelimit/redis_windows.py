"""A request's check in Redis in one round trip: one Lua script counts the request against
every limit of its policy and returns what the RateLimit fields need. The same script counts
several requests in one run, one after another (coalescing.py sends a worker's concurrent
checks that way).

`limits` could not give this. Its sliding window counter takes two calls per limit:
`hit()` runs a script that answers only true or false, and `get_window_stats()` runs a second
script to read the counts and expiries that `r` and `t` are made of; it has no call that does
both, and none for several keys. Two round trips per limit were most of what the limiter cost
a request (bench/limiter_cost.py: each redis-py call is a send, a wait and a parse; the work in
Redis is a few µs). Pipelining the library's two scripts would be one round trip too, but it
cannot stop at the first limit that refuses (the later ones would count a refused request)
and costs more client work per command than one script does.

So the script below is `limits`' own acquire_sliding_window.lua (5.x), unchanged, for each
limit in order, followed by what its sliding_window.lua reads, on the same keys: counts kept
by this code and by a replica still running `limits`' scripts are the same counts, and the
behaviour at window edges is the library's. The stats are turned into `remaining` and
`reset` as `SlidingWindowCounterRateLimiter.get_window_stats` does (window()). `limits` still
parses the settings, builds the client from the URL (Sentinel, Cluster, TLS) and counts in
memory for memory://.

In a Redis Cluster each limit's two keys share a hash slot, but different limits do not, and a
script may only touch one slot: there the script runs once per limit (still one round trip
per limit instead of two), and once per request.
"""

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from limits import RateLimitItem
from limits.aio.storage import RedisStorage

# Only for types: importing redis imports OpenTelemetry, which a service with tracing off must
# not load (tests/runtime/test_tracing.py); limits imports redis only for a Redis storage.
if TYPE_CHECKING:
    from redis.commands.core import AsyncScript


# KEYS: for each request, each of its limits' previous and current window key. ARGV: for each
# request, how many limits it has, then each one's quota and window in seconds, in the same
# order. The reply, per request: per limit counted (a request stops after its first refusal):
# acquired (1 or 0), previous count, its time to live in ms, current count, its ttl in ms.
ACQUIRE = """
local replies = {}
local key_at, argument_at = 0, 1
while argument_at <= #ARGV do
    local limits = tonumber(ARGV[argument_at])
    local result = {}
    for i = 0, limits - 1 do
        local previous_key, current_key = KEYS[key_at + 2 * i + 1], KEYS[key_at + 2 * i + 2]
        local limit = tonumber(ARGV[argument_at + 2 * i + 1])
        local expiry = tonumber(ARGV[argument_at + 2 * i + 2]) * 1000

        -- limits' acquire_sliding_window.lua, amount = 1:
        local current_ttl = tonumber(redis.call('pttl', current_key))
        if current_ttl > 0 and current_ttl < expiry then
            -- Current window expired, shift it to the previous window
            redis.call('rename', current_key, previous_key)
            redis.call('set', current_key, 0, 'PX', current_ttl + expiry)
        end
        local previous_count = tonumber(redis.call('get', previous_key)) or 0
        local previous_ttl = tonumber(redis.call('pttl', previous_key)) or 0
        local current_count = tonumber(redis.call('get', current_key)) or 0
        current_ttl = tonumber(redis.call('pttl', current_key)) or 0
        if previous_ttl <= 0 then
            previous_ttl = 0
        end
        if current_ttl <= 0 then
            current_ttl = 0
        end
        local weighted_count = math.floor(previous_count * previous_ttl / expiry) + current_count
        local acquired = 0
        if weighted_count + 1 <= limit then
            acquired = 1
            if redis.call('exists', current_key) == 1 then
                redis.call('incrby', current_key, 1)
            else
                redis.call('set', current_key, 1, 'PX', expiry * 2)
            end
        end

        -- limits' sliding_window.lua, just after: the window cannot need shifting again (the
        -- current key now lives at least a window, or does not exist), and time stands still
        -- within a script, so this is what get_window_stats() would read.
        table.insert(result, acquired)
        table.insert(result, tonumber(redis.call('get', previous_key)) or 0)
        table.insert(result, tonumber(redis.call('pttl', previous_key)))
        table.insert(result, tonumber(redis.call('get', current_key)) or 0)
        table.insert(result, tonumber(redis.call('pttl', current_key)))
        if acquired == 0 then
            break
        end
    end
    table.insert(replies, result)
    key_at = key_at + 2 * limits
    argument_at = argument_at + 1 + 2 * limits
end
return replies
"""
# (acquired, remaining, seconds until reset) for one limit, as hit() and get_window_stats() say.
Window = tuple[bool, int, float]
# Per key, its Redis key names are built once: a client sends many requests in a row.
KEYS_CACHED = 4096


class RedisWindows:
    """One policy's checks (its limits, in order) against one Redis (or Sentinel master, or
    Cluster). What does not depend on the key is worked out once, here."""

    def __init__(
        self, storage: RedisStorage, cluster: bool, policy: str, items: Sequence[RateLimitItem]
    ) -> None:
        self.prefixed = storage.bridge.prefixed_key
        self.policy = policy
        self.items = tuple(items)
        # limits' RedispyBridge (Limiter asks for implementation="redispy"): redis-py's client,
        # the Sentinel master's for Sentinel.
        bridge: Any = storage.bridge
        # Sent as EVALSHA; redis-py loads the script again when a restarted Redis lost it.
        self.script: AsyncScript = bridge.get_connection().register_script(ACQUIRE)
        everything = range(len(self.items))
        self.batches = [(i,) for i in everything] if cluster else [tuple(everything)]
        self.arguments = [
            [len(batch)]
            + [value for i in batch for value in (self.items[i].amount, self.items[i].get_expiry())]
            for batch in self.batches
        ]
        self._keys = lru_cache(maxsize=KEYS_CACHED)(self._key_names)

    async def acquire(self, key: str) -> list[Window]:
        """Each limit counted, in order, until the first that refuses, in a round trip of its
        own (one per limit in a Cluster)."""
        found: list[Window] = []
        for batch, arguments, names in zip(
            self.batches, self.arguments, self._keys(key), strict=True
        ):
            [reply] = await self.script(names, arguments)
            found += self.windows(reply, batch)
            if not found[-1][0]:
                break
        return found

    def request(self, key: str) -> tuple[list[str], list[int]]:
        """The script's KEYS and ARGV for one request of `key`, all limits in one run (not in
        a Cluster: the limits' keys are in different slots)."""
        [names] = self._keys(key)
        [arguments] = self.arguments
        return names, arguments

    def windows(self, reply: list[int], batch: Sequence[int] | None = None) -> list[Window]:
        """One request's part of the script's reply, a window per limit counted."""
        limits = self.batches[0] if batch is None else batch
        return [
            window(self.items[i], *reply[at : at + 5])
            for i, at in zip(limits, range(0, len(reply), 5), strict=False)
        ]

    def _key_names(self, key: str) -> list[list[str]]:
        """Each batch's KEYS. RedisStorage's names for a sliding window: "{<item key>}" and
        "{<item key>}/-1", under the storage's prefix; the braces keep both in one slot."""
        names = []
        for batch in self.batches:
            found = []
            for i in batch:
                current = self.prefixed(f"{{{self.items[i].key_for(self.policy, key)}}}")
                found += [f"{current}/-1", current]
            names.append(found)
        return names


def window(
    item: RateLimitItem,
    acquired: int,
    previous_count: int,
    previous_ttl_ms: int,
    current_count: int,
    current_ttl_ms: int,
) -> Window:
    """get_window_stats()' arithmetic (limits.aio.strategies), on what the script read."""
    expiry = item.get_expiry()
    previous_expires_in = max(0, previous_ttl_ms) / 1000
    current_expires_in = max(0, current_ttl_ms) / 1000
    weighted = previous_count * previous_expires_in / expiry + current_count
    remaining = max(0, item.amount - math.floor(weighted))
    if not (previous_count or current_count):
        return bool(acquired), remaining, 0.0
    previous_reset_in = current_reset_in = math.inf
    if previous_count:
        previous_reset_in = previous_expires_in % (expiry / previous_count)
    if current_count:
        # Time stands still within the script: a window this request opened has exactly two
        # windows to live, where the library, reading in a second call at least a ms later,
        # finds a little less and says "a window". The modulo alone would say 0 s.
        current_reset_in = current_expires_in % expiry or expiry
    return bool(acquired), remaining, min(previous_reset_in, current_reset_in)
