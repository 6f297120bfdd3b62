"""Feed requests that wait for the user's next change (`GET /changes?since=…&wait=N`).

A request whose page is empty registers in this process's ChangeWaiters under its user id,
gives its database connection back, and sleeps on an asyncio.Event until something says that
user's changes moved: then it reads the page again (a connection only for that read), or
after N seconds answers the empty page it had, whose token is as good as `since`.

What wakes it is one source per process (app.changes.notifications): on PostgreSQL a LISTEN
connection that hears the recording trigger's pg_notify at commit, through whichever worker
or replica wrote; on SQLite a poll of the change clock, shared by every waiter. While the
source cannot promise to hear every change (the LISTEN connection is down, or there is none
behind a transaction pooler without DATABASE_LISTEN_URL), waiters read again every
RECHECK_SECONDS instead: later, never missed. The reasons: docs/adr/0412-waiting-for-changes.md.

Registration comes before the first read: a change that commits after that read is heard,
one that committed before it is in it. On PostgreSQL it is also a row in change_waiters
(app.changes.registry): the recording trigger notifies only owners with one.

A wake with nothing new (another object's change already read, a recheck) is one more read,
and the request waits on.
"""

import asyncio
import functools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.security import AccessClaims
from app.changes import service
from app.changes.registry import WaiterRegistry, registered
from app.changes.tokens import ChangeTokens, FeedPosition

RECHECK_SECONDS = 2.0


@functools.cache
def _waiting() -> Gauge:
    """Per worker (pid label under gunicorn): how many feed requests wait, holding no
    connection. Made on first use, in the serving process: gunicorn's master imports this
    module too, and a gauge made at import would give it a file of its own (tests/runtime/
    test_metrics.py sees its pid among the workers')."""
    return Gauge(
        "todo_changes_waiting", "Feed requests waiting for a change", multiprocess_mode="liveall"
    )


class ChangeWaiters:
    """The waiting requests of one process, by user id; one per process (app.state)."""

    def __init__(self) -> None:
        self._events: dict[uuid.UUID, set[asyncio.Event]] = {}
        # True while the source hears every commit: waiters need no recheck.
        self.reliable = False
        self.stopping = False
        self.on_first_waiter: Callable[[], None] | None = None  # the SQLite poll starts
        # PostgreSQL with a LISTEN connection: the rows that make the trigger notify.
        self.registry: WaiterRegistry | None = None

    def __len__(self) -> int:
        return sum(len(events) for events in self._events.values())

    def users(self) -> list[uuid.UUID]:
        return list(self._events)

    @contextmanager
    def subscribe(self, user_id: uuid.UUID) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        if self.stopping:
            event.set()
        first = not self._events
        self._events.setdefault(user_id, set()).add(event)
        _waiting().inc()
        if first and self.on_first_waiter is not None:
            self.on_first_waiter()
        try:
            yield event
        finally:
            _waiting().dec()
            events = self._events.get(user_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._events[user_id]

    def wake(self, user_id: uuid.UUID) -> None:
        for event in self._events.get(user_id, ()):
            event.set()

    def wake_all(self) -> None:
        for events in self._events.values():
            for event in events:
                event.set()

    def stop(self) -> None:
        """The worker stops: every waiter answers now, with what it has (an empty page)."""
        self.stopping = True
        self.wake_all()

    async def sleep(self, event: asyncio.Event, remaining: float, recheck: bool = False) -> bool:
        """Until woken (True), a recheck is due (True) or `remaining` is over (False); a
        recheck is due every RECHECK_SECONDS while the source is not reliable, or if asked."""
        reliable = self.reliable and not recheck
        timeout = remaining if reliable else min(remaining, RECHECK_SECONDS)
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return timeout < remaining
        event.clear()
        return not self.stopping


async def feed(
    session: AsyncSession,
    claims: AccessClaims,
    tokens: ChangeTokens,
    waiters: ChangeWaiters,
    since: str,
    limit: int,
    retention: timedelta,
    wait: int,
) -> bytes:
    """A page of the feed, waiting up to `wait` seconds for one that is not empty."""
    position = service.position(claims, tokens, since, retention)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    # The registration's own pool session takes a connection: the request's gives its back.
    await session.close()
    with waiters.subscribe(claims.user_id) as woken:
        async with registered(waiters.registry, claims.user_id, wait) as registration:
            page = await service.read(session, claims, position, limit)
            while not _news(page, position) and not waiters.stopping:
                # The connection goes back to the pool for the wait: hundreds of waiting
                # requests hold none. The next read takes one again.
                await session.close()
                remaining = deadline - loop.time()
                recheck = not registration.sure
                if remaining <= 0 or not await waiters.sleep(woken, remaining, recheck):
                    break
                await registration.renew()
                # From `since` again: the answer holds everything after it, repeats included.
                page = await service.read(session, claims, position, limit)
            await session.close()  # before the removal's session takes one
    if page.changes and not _news(page, position):
        # Only repeats: nothing changed. The client's own token is as good as it gets.
        page = service.Page((), position, more=False)
    return service.body(page, tokens, claims.user_id)


def _news(page: service.Page, position: FeedPosition) -> bool:
    """Whether the page holds a change the pass before did not deliver. On PostgreSQL the
    feed repeats changes at or above its watermark while any transaction in the cluster
    stays open (app.changes.service); the token's snapshot tells those apart."""
    return page.more or any(not position.saw(change.txid) for change in page.changes)
