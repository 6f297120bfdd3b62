"""What an app does as it starts and stops (its lifespan), and the schema work before it.

Startup: the settings (when create_app() was given none) → the engine, the readiness probe,
the password hasher, the token codecs, the rate limiter → tracing's provider (after gunicorn's
fork) → the schema (migrate, or RESET_DB's rebuild with demo data) and the first superuser →
the purge loop and the feed's notifier. Shutdown undoes it in reverse.
reset_database_once() is RESET_DB for a multi-process server, run by gunicorn's master
before it forks (gunicorn_conf.py).
"""

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.concurrency import run_in_threadpool

from app import demo, migrations, stopping, tracing
from app.accounts import users
from app.accounts.security import PasswordHasher, TokenCodec
from app.changes.notifications import Notifier
from app.changes.tokens import ChangeTokens
from app.config import Settings, get_settings
from app.database import create_sessionmaker, transaction
from app.engines import create_db_engine, create_migration_engine
from app.health.probe import ReadinessProbe, create_probe_engine
from app.logs import configure_logging
from app.purge import purge_periodically
from app.ratelimit.limiter import MEMORY_WARNING, Limiter
from app.wiring import configure


def reset_database_once() -> None:
    """RESET_DB for a multi-process server: rebuild with demo data now, in this process, and
    clear the flag for the workers it is about to start (gunicorn's master calls this)."""
    settings = get_settings()
    if not settings.reset_db:
        return
    asyncio.run(_reset_once(settings))
    os.environ["RESET_DB"] = "0"
    get_settings.cache_clear()


async def _reset_once(settings: Settings) -> None:
    engine = create_db_engine(settings)
    hasher = PasswordHasher(settings.bcrypt_rounds)
    try:
        await _reset_with_demo_data(settings, create_sessionmaker(engine), hasher)
    finally:
        await engine.dispose()
        hasher.close()


async def _reset_with_demo_data(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], hasher: PasswordHasher
) -> None:
    # Blocking work (file lock, synchronous driver, no request statement timeout): off the
    # event loop, on a connection of its own.
    await run_in_threadpool(_prepare_schema, settings, migrations.reset_database)
    async with sessionmaker() as session, transaction(session):
        await demo.load(session, hasher)


def _prepare_schema(settings: Settings, work: Callable[[Settings, Engine], object]) -> None:
    engine = create_migration_engine(settings.for_schema_work())
    try:
        work(settings, engine)
    finally:
        engine.dispose()


async def _prepare_database(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    sessionmaker = app.state.sessionmaker
    if settings.schema_on_startup == "reset":
        await _reset_with_demo_data(settings, sessionmaker, app.state.hasher)
    elif settings.schema_on_startup == "migrate":
        await run_in_threadpool(_prepare_schema, settings, migrations.upgrade_to_head)
    if settings.first_superuser_email and settings.first_superuser_password:
        async with sessionmaker() as session:
            await users.ensure_superuser(
                session,
                app.state.hasher,
                settings.first_superuser_email,
                settings.first_superuser_password.get_secret_value(),
            )
            await session.commit()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    if not hasattr(app.state, "settings"):  # create_app() without settings: read them now
        configure(app, get_settings())
    settings: Settings = app.state.settings
    # gunicorn applies the same configuration itself (gunicorn_conf.py), and under pytest the
    # root logger belongs to log capture: configure only a process nobody configured yet.
    if not logging.getLogger().handlers:
        configure_logging(settings.log_level, settings.log_format)
    app.state.started_at = time.monotonic()
    engine = app.state.engine = create_db_engine(settings)
    app.state.sessionmaker = create_sessionmaker(engine)
    app.state.probe = ReadinessProbe(create_probe_engine(settings))
    # Building these costs a bcrypt hash (the dummy one) and may create the dev key file.
    app.state.hasher = await run_in_threadpool(
        PasswordHasher, settings.bcrypt_rounds, settings.hash_queue_limit
    )
    app.state.token_codec = await run_in_threadpool(TokenCodec, settings)
    app.state.change_tokens = await run_in_threadpool(ChangeTokens, settings)
    app.state.limiter = _limiter(settings)
    # The tracer provider and exporter, when create_app() wired tracing (app/tracing.py). Here,
    # in the serving process: under gunicorn, after the fork. Ended (flushed) after the engine.
    spans = contextlib.ExitStack()
    try:
        app.state.hasher.tracing = spans.enter_context(tracing.traced(app, engine))
        await _prepare_database(app)
        # Everything built so far lives as long as the process: exempt it from the cyclic
        # garbage collector, whose full passes would otherwise walk it all again and again
        # (a pause of tens of milliseconds each, paid by whichever request is in flight).
        gc.collect()
        gc.freeze()
        purge = asyncio.create_task(purge_periodically(app.state.sessionmaker, settings))
        # Here, after the fork: one notifier per worker process for all its waiting requests.
        notifier = Notifier(settings, app.state.sessionmaker)
        app.state.change_waiters = notifier.waiters
        unregister = stopping.on_stop(notifier.stop_waiting)
        try:
            yield
        finally:
            unregister()
            await notifier.close()
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
    finally:
        await engine.dispose()
        await app.state.probe.close()
        app.state.hasher.close()
        if app.state.limiter is not None:
            await app.state.limiter.close()
        spans.close()


def _limiter(settings: Settings) -> Limiter | None:
    if not settings.rate_limit_enabled:
        return None
    limiter = Limiter(settings)
    if limiter.in_memory:
        logging.getLogger("app.ratelimit").warning(MEMORY_WARNING)
    return limiter
