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
    BEGIN and COMMIT round trips. transactional() is the view for work that needs them.
    """
    url = database_url(settings, asynchronous=True)
    if settings.is_sqlite:
        engine = create_async_engine(
            url,
            hide_parameters=True,
            connect_args={"timeout": 30},
            # SQLite's connections are in the driver's autocommit mode already (_on_connect);
            # this option only tells _on_begin to emit no BEGIN.
            execution_options={AUTOCOMMIT: True},
        )
        _configure_sqlite(engine.sync_engine)
        return engine
    server_settings = {"application_name": settings.project_name}
    timeout = settings.db_statement_timeout_ms
    if timeout:
        server_settings["statement_timeout"] = str(timeout)
        server_settings["idle_in_transaction_session_timeout"] = str(max(timeout * 2, 10_000))
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
        if connection.get_execution_options().get(AUTOCOMMIT):
            return  # no BEGIN: each statement is a transaction of its own
        # Writers take the write lock up front: a deferred transaction that reads and later
        # writes fails at once with SQLITE_BUSY when another connection committed in between,
        # and busy_timeout cannot help it. IMMEDIATE makes writers queue instead.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _unicode_lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


def transactional(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, for statements that must commit together (UnitOfWork.transaction)."""
    options: dict[str, Any] = {AUTOCOMMIT: False}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "READ COMMITTED"
    return engine.execution_options(**options)


class UnitOfWork:
    """One request's database work, run as SQLAlchemy Core statements.

    A statement commits on its own when it returns; statements that must stand or fall
    together run inside `async with db.transaction():`, committed at the end of the block.
    Every write of the service is a single statement or such a block: a unit of work refuses
    a second write outside one. Statements and their checks are written so that one
    statement is usually all a request needs (one round trip, no BEGIN and COMMIT).
    """

    __slots__ = ("_connection", "_engine", "_in_transaction", "_transactional", "_wrote")

    def __init__(self, engine: AsyncEngine, transactional: AsyncEngine) -> None:
        self._engine, self._transactional = engine, transactional
        self._connection: AsyncConnection | None = None
        self._in_transaction = self._wrote = False

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def execute(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> CursorResult[*tuple[Any, ...]]:
        if not self._in_transaction and getattr(statement, "is_dml", False):
            if self._wrote:
                raise RuntimeError("a second write outside db.transaction(): group them in one")
            self._wrote = True
        if self._connection is None:
            self._connection = await self._engine.connect()
        return await self._connection.execute(statement, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Statements that commit together: rolled back if the block raises, except for an
        AppError whose persist_changes says its effects must stay (then committed)."""
        if self._in_transaction:
            raise RuntimeError("db.transaction() does not nest; use db.savepoint()")
        await self.release()
        connection = self._connection = await self._transactional.connect()
        self._in_transaction = True
        try:
            yield
        except AppError as exc:
            await (connection.commit() if exc.persist_changes else connection.rollback())
            raise
        except BaseException:
            await connection.rollback()
            raise
        else:
            await connection.commit()
        finally:
            self._in_transaction = False
            await self.release()

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """Inside a transaction, a nested one: a failed statement in it (a unique violation)
        undoes only its part, and the transaction stays usable. Outside, a statement is its
        own transaction already."""
        if not self._in_transaction or self._connection is None:
            yield
            return
        async with self._connection.begin_nested():
            yield

    async def release(self) -> None:
        """Give the connection back to the pool (before slow work such as bcrypt)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def __aenter__(self) -> "UnitOfWork":
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        await self.release()


def unit_of_work(engine: AsyncEngine) -> UnitOfWork:
    """A unit of work outside a request (startup): `async with unit_of_work(engine) as db`."""
    return UnitOfWork(engine, transactional(engine))


async def get_db(request: Request) -> AsyncIterator[UnitOfWork]:
    """The request's unit of work; its connection goes back to the pool when the route is done."""
    state = request.app.state
    async with UnitOfWork(state.engine, state.transactional_engine) as db:
        yield db


# scope="function": the connection is back in the pool before the response is sent. (Every
# commit happens in the route itself: a statement or a db.transaction() block commits before
# it returns, so a failed commit is an error response, never a 2xx for data not stored.)
Db = Annotated[UnitOfWork, Depends(get_db, scope="function")]
