"""A worker's concurrent rate-limit checks, coalesced: while one round trip to Redis is in
flight, the checks that arrive queue up, and when its reply is in, everything queued (up to
BATCH_LIMIT) goes as ONE round trip: one EVALSHA of redis_windows.ACQUIRE, which counts the
requests one after another in arrival order, each stopping at its first refusing limit, on
the same keys and with the same arithmetic as a check of its own. Each waiting request then
gets its own windows.

Why: the check's cost is almost all redis-py's client work per command (a send, a wait on the
event loop, a parse), not Redis's. One command per request was most of the limiter's 10%
budget (issue 25); one command per batch shares that work. bench/limiter_cost.py, 16 checks
at once (what 32 connections on 2 workers give one worker): about 85 µs of CPU per check
before, about 43 after (28 with hiredis); 64 at once: about 100 before, 34 after. The price:
a lone check costs some 15-25 µs more (a task and a future), on a worker with time to spare.
Sending a lone check from the caller's own task instead (a sender task only once a queue
forms) kept a lone check's cost, but every burst's first check then went alone, and a
simulated busy worker (16 requests at once, 0.6-1.5 ms of work each) paid 10-20 µs more per
request than it does this way.

What could not be had from the libraries: redis-py's asyncio client multiplexes nothing (a
command holds a connection from the pool for its whole round trip, and it has no automatic
pipelining), and `limits` has no call that counts several keys. Hence this small queue.

- No timer and no added wait: a lone check is sent on the event loop's next turn; a batch
  forms only from checks that arrive in that turn or while a round trip is in flight.
- One round trip in flight per process, so a batch sent later never overtakes an earlier one.
- Faults, as limiter.py wants them: a round trip that fails or outlasts the timeout fails its
  batch and everything queued behind it (Redis is down or hanging: each of those requests is
  served uncounted, and counts a miss); a waiter that stops waiting (its own timeout, or its
  client went away) is dropped from the queue if its turn had not come, and its answer is
  ignored if it had; the others get theirs. Nothing is kept across a failure: the next check
  starts afresh, so counting resumes by itself.
- Not for a Redis Cluster: different requests' keys live in different slots, and one script
  may touch only one; there each request keeps its own round trips (RedisWindows.acquire).
"""

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.ratelimit.redis_windows import RedisWindows, Window

# Only for types: importing redis imports OpenTelemetry, which a service with tracing off must
# not load (tests/runtime/test_tracing.py); limits imports redis only for a Redis storage.
if TYPE_CHECKING:
    from redis.commands.core import AsyncScript


# Keys and arguments of one script run grow with the batch; 64 requests of two limits are
# 256 keys, a few kB to send and well under a millisecond of Redis's time.
BATCH_LIMIT = 64


@dataclass(slots=True)
class Waiting:
    windows: RedisWindows  # the request's policy: its limits and their keys
    key: str
    answer: "asyncio.Future[list[Window]]"


class Coalescer:
    def __init__(
        self, script: "AsyncScript", timeout: float, batch_limit: int = BATCH_LIMIT
    ) -> None:
        self.script = script  # redis_windows.ACQUIRE, registered with the client
        self.timeout = timeout
        self.batch_limit = batch_limit
        self.queue: deque[Waiting] = deque()
        self.sender: asyncio.Task[None] | None = None

    async def acquire(self, windows: RedisWindows, key: str) -> list[Window]:
        """As windows.acquire(key), in the next round trip to go."""
        answer: asyncio.Future[list[Window]] = asyncio.get_running_loop().create_future()
        self.queue.append(Waiting(windows, key, answer))
        if self.sender is None:
            # A task of its own: a waiter cancelled mid-flight must not cancel the others'.
            self.sender = asyncio.create_task(self._send())
        return await answer

    async def _send(self) -> None:
        batch: list[Waiting] = []
        try:
            while self.queue:
                batch = self._next_batch()
                if batch:
                    await self._round_trip(batch)
        except BaseException as exc:  # cancelled (the limiter closes): nobody waits forever
            _fail([*batch, *self.queue], ConnectionError(f"rate-limit check abandoned: {exc!r}"))
            self.queue.clear()
            raise
        finally:
            self.sender = None

    def _next_batch(self) -> list[Waiting]:
        batch: list[Waiting] = []
        while self.queue and len(batch) < self.batch_limit:
            waiting = self.queue.popleft()
            if not waiting.answer.done():  # else it stopped waiting: it is not counted
                batch.append(waiting)
        return batch

    async def _round_trip(self, batch: list[Waiting]) -> None:
        keys: list[str] = []
        arguments: list[int] = []
        for waiting in batch:
            names, values = waiting.windows.request(waiting.key)
            keys += names
            arguments += values
        try:
            async with asyncio.timeout(self.timeout):
                replies = await self.script(keys, arguments)
        except Exception as exc:  # refused, reset, timed out, an error reply
            # Those queued meanwhile would only wait for the same fault.
            _fail([*batch, *self.queue], exc)
            self.queue.clear()
            return
        for waiting, reply in zip(batch, replies, strict=True):
            if not waiting.answer.done():
                waiting.answer.set_result(waiting.windows.windows(reply))

    async def close(self) -> None:
        sender = self.sender
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender


def _fail(waiting: list[Waiting], exc: Exception) -> None:
    for one in waiting:
        if not one.answer.done():
            one.answer.set_exception(exc)
