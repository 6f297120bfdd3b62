"""Engines, declarative base and the per-request unit of work.

Requests run on an asyncio engine (asyncpg, aiosqlite): a request waits for the database
without holding a thread, and a worker needs no thread hand-offs per request. Schema work
(migrations, RESET_DB) runs on a synchronous engine (psycopg2, sqlite3) before serving.
"""

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import (
    Connection,
    CursorResult,
    DateTime,
    Engine,
    Executable,
    MetaData,
    create_engine,
    event,
)
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry, NullPool
from sqlalchemy.types import TypeDecorator

from app.config import Settings
from app.errors import AppError

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


def database_url(settings: Settings, *, asynchronous: bool) -> URL:
    """DATABASE_URL with the driver each side uses, whichever one it names (or none)."""
    url = make_url(settings.database_url)
    backend = settings.database_backend
    return url.set(drivername=f"{backend}+{_DRIVERS[backend][asynchronous]}")


def create_db_engine(settings: Settings) -> AsyncEngine:
    """The request engine: a request waits for the database without holding a thread."""
    url = database_url(settings, asynchronous=True)
    if settings.is_sqlite:
        engine = create_async_engine(url, hide_parameters=True, connect_args={"timeout": 30})
        _configure_sqlite(engine.sync_engine)
        return engine
    server_settings = {"application_name": settings.project_name}
    timeout = settings.db_statement_timeout_ms
    if timeout:
        server_settings["statement_timeout"] = str(timeout)
        server_settings["idle_in_transaction_session_timeout"] = str(max(timeout * 2, 10_000))
    engine = create_async_engine(
        url,
        # Error messages and logs carry the statement, never its values (password hashes).
        hide_parameters=True,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=settings.db_pool_recycle,
        connect_args={
            "timeout": settings.db_connect_timeout,
            # The client-side bound behind the server's statement timeout: a query to a peer
            # that vanished without closing the connection fails instead of waiting forever.
            "command_timeout": timeout / 1000 * 2 if timeout else None,
            "server_settings": server_settings,
        },
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed)
    return engine


def _discard_closed(_dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
    # asyncpg reads its sockets all the time, so a connection the server closed (a restart,
    # pg_terminate_backend) is already known to be closed here. Checking that costs nothing;
    # SQLAlchemy's pre-ping would cost up to three round trips (BEGIN, ping, ROLLBACK) on
    # every checkout. The pool replaces a discarded connection and retries the checkout.
    if record.driver_connection is None or record.driver_connection.is_closed():
        raise DisconnectionError("connection closed by the server")


def create_migration_engine(settings: Settings) -> Engine:
    """Schema work: one synchronous connection, without the request statement timeout (waiting
    for another process's migration, or a long DDL, must not time out), closed afterwards."""
    url = database_url(settings, asynchronous=False)
    if settings.is_sqlite:
        engine = create_engine(
            url, poolclass=NullPool, hide_parameters=True, connect_args={"timeout": 30}
        )
        _configure_sqlite(engine)
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


def _configure_sqlite(engine: Engine) -> None:
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
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            # Reads take no lock: in WAL mode they run beside the writer, on a snapshot.
            connection.exec_driver_sql("BEGIN")
            return
        # Writers take the write lock up front: a deferred transaction that reads and later
        # writes fails at once with SQLITE_BUSY when another connection committed in between,
        # and busy_timeout cannot help it. IMMEDIATE makes writers queue instead.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _unicode_lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


# Execution option on the read engine (see read_only_engine).
READ_ONLY = "todo_read_only"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def read_only_engine(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, for requests that only read (safe methods).

    On PostgreSQL their statements run in autocommit: a read needs no BEGIN and COMMIT, two
    of the three round trips of a one-query request. On SQLite they run in a deferred
    transaction, which takes no write lock.
    """
    options: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "AUTOCOMMIT"
    return engine.execution_options(**options)


class UnitOfWork:
    """One request's database work: one connection, taken at first use, in one transaction.

    Services run SQLAlchemy Core statements on it (the ORM's Session measured slower than
    the queries it ran). get_db commits it before the response is sent, or rolls it back.
    """

    __slots__ = ("_connection", "_engine")

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def execute(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> CursorResult[*tuple[Any, ...]]:
        connection = await self._connect()
        return await connection.execute(statement, params)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction: an error inside undoes only its part, and the request's
        transaction stays usable (on PostgreSQL a failed statement aborts the whole one)."""
        connection = await self._connect()
        async with connection.begin_nested():
            yield

    async def commit(self) -> None:
        if self._connection is not None:
            await self._connection.commit()

    async def release(self) -> None:
        """Commit what was done so far and give the connection back to the pool, before slow
        work (bcrypt) that needs neither; later statements run in a new transaction."""
        await self.commit()
        await self.close()

    async def close(self) -> None:
        """Give the connection back; whatever was not committed is rolled back."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def _connect(self) -> AsyncConnection:
        if self._connection is None:
            self._connection = await self._engine.connect()
        return self._connection


@asynccontextmanager
async def unit_of_work(engine: AsyncEngine) -> AsyncIterator[UnitOfWork]:
    """Outside a request (startup): commit on success, roll back on error."""
    db = UnitOfWork(engine)
    try:
        yield db
        await db.commit()
    finally:
        await db.close()


async def get_db(request: Request) -> AsyncIterator[UnitOfWork]:
    """The request's unit of work: committed on success, rolled back on error (see AppError).
    Safe methods get the read engine: nothing to commit, no transaction on PostgreSQL."""
    state = request.app.state
    reads_only = request.method in SAFE_METHODS
    db = UnitOfWork(state.read_engine if reads_only else state.engine)
    try:
        yield db
        if not reads_only:
            await db.commit()
    except AppError as exc:
        if exc.persist_changes:
            await db.commit()
        raise
    finally:
        await db.close()


# scope="function": the commit above runs before the response is sent, so a failed commit
# becomes an error response instead of a 2xx for data that was never stored.
Db = Annotated[UnitOfWork, Depends(get_db, scope="function")]
