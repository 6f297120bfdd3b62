"""The readiness probe: one query on an engine of its own (create_probe_engine).

Concurrent probes share the one in flight (a burst of them, from a load balancer or from
anyone, costs one query), and each answers within PROBE_TIMEOUT whatever the database does.
"""

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from app.config import Settings

# The request engine's own connection settings, so that the probe connects as requests do.
from app.engines import _TRANSACTION_POOLER_ARGS, _server_timeouts, database_url

logger = logging.getLogger(__name__)
_PING = text("SELECT 1")


# The readiness probe's bound: connecting and its one query each (API.md: "answers within a
# second while the request pool is exhausted").
PROBE_TIMEOUT = 0.8


def create_probe_engine(settings: Settings) -> AsyncEngine:
    """The readiness probe's own engine: one connection per worker, beside the request pool.

    A probe that took a connection from the request pool queued behind every request waiting
    for one, so a pool held by slow requests (issue 29: lock waiters) failed the probe and a
    Kubernetes readiness check took the pod out of service while the database was fine. This
    pool's one connection answers only probes (concurrent probes share one ping, see
    ReadinessProbe), with short timeouts of its own. It costs one more connection per worker.
    """
    url = database_url(settings, asynchronous=True)
    if settings.is_sqlite:
        return create_async_engine(
            url, poolclass=NullPool, hide_parameters=True, connect_args={"timeout": PROBE_TIMEOUT}
        )
    pooled = settings.db_pooler == "transaction"
    # The startup parameters the request engine's connections send: a database (or pooler)
    # that refuses them, and so every request, fails the probe too.
    timeouts = _server_timeouts(settings.db_statement_timeout_ms, settings.lock_timeout_ms)
    connect_args: dict[str, Any] = {
        "timeout": PROBE_TIMEOUT,
        "command_timeout": PROBE_TIMEOUT,
        "server_settings": {"application_name": f"{settings.project_name}-probe"}
        | ({} if pooled else timeouts),
    }
    if pooled:
        connect_args |= _TRANSACTION_POOLER_ARGS
    engine = create_async_engine(
        url,
        isolation_level="AUTOCOMMIT",
        hide_parameters=True,
        pool_size=1,
        max_overflow=0,
        pool_timeout=PROBE_TIMEOUT,
        pool_recycle=settings.db_pool_recycle,
        # A probe is rare: a ping on checkout costs little, and a connection the server
        # closed (a restart) is replaced before it could answer "not ready" by mistake.
        pool_pre_ping=True,
        connect_args=connect_args,
    )
    return engine


class ReadinessProbe:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._in_flight: asyncio.Task[bool] | None = None

    async def ready(self) -> bool:
        if self._in_flight is None or self._in_flight.done():
            self._in_flight = asyncio.create_task(self._ping())
        # shield: one caller's disconnect must not cancel the ping the others wait for.
        return await asyncio.shield(self._in_flight)

    async def _ping(self) -> bool:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT), self.engine.connect() as connection:
                await connection.execute(_PING)
        except Exception as exc:  # any failure to reach the database means "not ready"
            logger.warning("readiness probe failed: %s", type(exc).__name__)
            return False
        return True

    async def close(self) -> None:
        if self._in_flight is not None:
            with contextlib.suppress(BaseException):
                await self._in_flight
        await self.engine.dispose()
