"""Engines, declarative base and the request's unit of work: a SQLAlchemy AsyncSession.

Requests run on an asyncio engine (asyncpg, aiosqlite): a request waits for the database
without holding a thread, and a worker needs no thread hand-offs per request. Schema work
(migrations, RESET_DB) runs on a synchronous engine (psycopg2, sqlite3) before serving.
Why the request's session autocommits and what transaction() is for:
docs/adr/0001-autocommit-unit-of-work.md.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from app.config import Settings
from app.pool_health import discard_unusable

# Deterministic constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends.

    PostgreSQL keeps the offset (timestamptz); SQLite keeps none, so values are stored as naive
    UTC there (which also keeps their text form sortable) and made aware again on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


# (synchronous, asyncio) driver per backend: schema work is synchronous, requests are not.
_DRIVERS = {"postgresql": ("psycopg2", "asyncpg"), "sqlite": ("pysqlite", "aiosqlite")}


# Execution option: statements on the connection commit on their own (see create_db_engine).
AUTOCOMMIT = "todo_autocommit"


def database_url(settings: Settings, *, asynchronous: bool) -> URL:
    """DATABASE_URL with the driver each side uses, whichever one it names (or none)."""
    url = make_url(settings.database_url)
    backend = settings.database_backend
    return url.set(drivername=f"{backend}+{_DRIVERS[backend][asynchronous]}")


def create_db_engine(settings: Settings) -> AsyncEngine:
    """The request engine: a request waits for the database without holding a thread.

    Its connections autocommit: a statement that is a whole unit of work by itself needs no
    BEGIN and COMMIT round trips. transaction() is for work that needs them.
    """
    url = database_url(settings, asynchronous=True)
    if settings.is_sqlite:
        # Every SQLite writer queues for the database's one write lock, where PostgreSQL's
        # waiters are only those of one list: a burst of ordinary writes must not time out.
        busy_ms = settings.lock_timeout_ms * _SQLITE_QUEUE or _SQLITE_BUSY_MS
        engine = create_async_engine(
            url,
            hide_parameters=True,
            connect_args={"timeout": busy_ms / 1000},
            # SQLite's connections are in the driver's autocommit mode already (_on_connect);
            # this option only tells _on_begin to emit no BEGIN.
            execution_options={AUTOCOMMIT: True},
        )
        _configure_sqlite(engine.sync_engine, busy_ms)
        return engine
    timeout = settings.db_statement_timeout_ms
    timeouts = _server_timeouts(timeout, settings.lock_timeout_ms)
    pooled = settings.db_pooler == "transaction"
    connect_args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout,
        # The client-side bound behind the server's statement timeout: a query to a peer that
        # vanished without closing the connection fails instead of waiting forever. Behind a
        # pooler it is the statement timeout itself (asyncpg cancels the query on the server).
        "command_timeout": timeout / 1000 * (1 if pooled else 2) if timeout else None,
        # A pooler refuses other startup parameters; their values come from _set_local then.
        "server_settings": {"application_name": settings.project_name}
        | ({} if pooled else timeouts),
    }
    if pooled:
        connect_args |= _TRANSACTION_POOLER_ARGS
    engine = create_async_engine(
        url,
        isolation_level="AUTOCOMMIT",
        execution_options={AUTOCOMMIT: True},
        # Error messages and logs carry the statement, never its values (password hashes).
        hide_parameters=True,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=settings.db_pool_recycle,
        connect_args=connect_args,
    )
    # Closed by the server, or its BEGIN failed (issue 29): replaced, never handed out.
    event.listen(engine.sync_engine, "checkout", discard_unusable)
    if pooled and timeouts:
        calls = (f"set_config('{name}', '{value}', true)" for name, value in timeouts.items())
        event.listen(engine.sync_engine, "begin", partial(_set_local, "SELECT " + ", ".join(calls)))
    return engine


def _server_timeouts(statement_timeout_ms: int, lock_timeout_ms: int) -> dict[str, str]:
    timeouts = {}
    if statement_timeout_ms:
        idle = max(statement_timeout_ms * 2, 10_000)
        timeouts["statement_timeout"] = str(statement_timeout_ms)
        timeouts["idle_in_transaction_session_timeout"] = str(idle)
    if lock_timeout_ms:
        # A list's lock, a row another request writes: a waiter gives up (SQLSTATE 55P03,
        # answered 503) instead of holding its connection while the queue grows.
        timeouts["lock_timeout"] = str(lock_timeout_ms)
    return timeouts


# DB_POOLER=transaction: behind PgBouncer (or any pooler) in transaction mode, each exchange
# that ends a transaction may land on another server connection, so no statement may rely on
# one prepared earlier. Statements are unnamed and never cached: asyncpg then sends Parse
# again with every Bind and Execute, in the same exchange ("we always do this when
# stmt_cache_size is set to 0 assuming people are running PgBouncer", asyncpg's
# _get_statement). SQLAlchemy's documented alternative, unique names, leaves every statement
# prepared on some server connection for ever (its docs' warning). The cost: asyncpg still
# asks the server for the statement's types first, so a statement takes two round trips
# instead of one (README, "Behind a connection pooler").
_TRANSACTION_POOLER_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,  # asyncpg's own cache
    "prepared_statement_cache_size": 0,  # SQLAlchemy's asyncpg adapter's cache
    "prepared_statement_name_func": str,  # str() == "": the unnamed statement
}


def _set_local(statement: str, connection: Connection) -> None:
    # A transaction through a pooler sets its own timeouts (SET LOCAL ends with it), as the
    # startup parameters would have: a statement or an idle transaction cannot hold a
    # server connection, and its locks, for ever.
    if connection.get_execution_options().get(AUTOCOMMIT):
        return  # one statement: bounded by command_timeout
    connection.exec_driver_sql(statement)


def create_migration_engine(settings: Settings) -> Engine:
    """Schema work: one synchronous connection, without the request statement timeout (waiting
    for another process's migration, or a long DDL, must not time out), closed afterwards."""
    url = database_url(settings, asynchronous=False)
    if settings.is_sqlite:
        engine = create_engine(
            url,
            poolclass=NullPool,
            hide_parameters=True,
            connect_args={"timeout": _SQLITE_BUSY_MS / 1000},
        )
        _configure_sqlite(engine, _SQLITE_BUSY_MS)
        return engine
    return create_engine(
        url,
        poolclass=NullPool,
        hide_parameters=True,
        connect_args={
            "connect_timeout": settings.db_connect_timeout,
            "application_name": settings.project_name,
        },
    )


# Schema work on SQLite waits this long for the write lock (requests: 10 x LOCK_TIMEOUT_MS).
_SQLITE_BUSY_MS = 30_000
# Requests on SQLite wait up to this many LOCK_TIMEOUT_MS for the write lock (then 503).
_SQLITE_QUEUE = 10


def _configure_sqlite(engine: Engine, busy_ms: int) -> None:
    # aiosqlite logs every call with its arguments at DEBUG: password and token hashes.
    # Whatever LOG_LEVEL says, that logger never passes them on.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        # SQLite's lower() folds ASCII only; q= must be case-insensitive for every script,
        # as it is on PostgreSQL.
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
        cursor = dbapi_connection.cursor()
        for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=NORMAL"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(AUTOCOMMIT):
            return  # no BEGIN: each statement is a transaction of its own
        # Writers take the write lock up front: a deferred transaction that reads and later
        # writes fails at once with SQLITE_BUSY when another connection committed in between,
        # and busy_timeout cannot help it. IMMEDIATE makes writers queue instead.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _unicode_lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


# The request engine's connections autocommit; these options turn one of its connections into
# a transaction (SQLAlchemy's "Setting Isolation For Individual Transactions": options given to
# Session.connection() before the transaction's first statement). On SQLite the BEGIN itself
# comes from _on_begin, which reads the same flag.
_TRANSACTION_OPTIONS: dict[str, dict[str, Any]] = {
    "postgresql": {AUTOCOMMIT: False, "isolation_level": "READ COMMITTED"},
    "sqlite": {AUTOCOMMIT: False},
}


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on the autocommit engine: a statement is committed when it returns, with no
    BEGIN and COMMIT round trips (the docs' "DBAPI Autocommit" pattern); work that must
    commit together runs in `async with transaction(session):`."""
    # expire_on_commit=False: entities handed to a response stay readable after the commit.
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Statements that commit together, in READ COMMITTED: `session.begin()` on a connection
    taken with the transaction options (see _TRANSACTION_OPTIONS). Whatever the session did
    before in autocommit mode is committed already; ending it here returns its connection."""
    await session.commit()
    async with session.begin():
        await session.connection(execution_options=_TRANSACTION_OPTIONS[dialect_name(session)])
        yield session


def dialect_name(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _autocommitting(session: Session) -> bool:
    return bool(session.connection().get_execution_options().get(AUTOCOMMIT))


def _count_write(session: Session, writes: int) -> None:
    # Two writes in autocommit mode are two transactions: a failure between them leaves half
    # the work stored. Refused at once, so the mistake shows in the first test that runs it.
    total = session.info["autocommit_writes"] = session.info.get("autocommit_writes", 0) + writes
    if total > 1:
        raise RuntimeError("a second write outside transaction(session): group them in one")


@event.listens_for(Session, "do_orm_execute")
def _one_write_outside_a_transaction(state: ORMExecuteState) -> None:
    if (state.is_insert or state.is_update or state.is_delete) and _autocommitting(state.session):
        _count_write(state.session, 1)


@event.listens_for(Session, "before_flush")
def _one_flushed_write_outside_a_transaction(session: Session, *_: object) -> None:
    pending = len(session.new) + len(session.dirty) + len(session.deleted)
    if pending and session.bind is not None and _autocommitting(session):
        _count_write(session, pending)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work; committed (and its connection returned) when the route is
    done, before the response is sent (scope="function" below).

    close() is awaited here rather than by `async with session`: SQLAlchemy 2.1's __aexit__
    runs it in a task of its own behind asyncio.shield (so that a cancelled caller cannot
    abandon it), which costs every request a task and two more event loop turns (bench/cost.py:
    a todo read 1,454 -> 1,334 Python calls). A request is cancelled only when its worker
    stops past GRACEFUL_TIMEOUT, and then the pool is disposed with it."""
    session = request.app.state.sessionmaker()
    try:
        yield session
        await session.commit()
    finally:
        await session.close()


# scope="function": the dependency's exit, and so the commit, runs before the response is sent:
# a failed commit is an error response, never a 2xx for data that was not stored.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
