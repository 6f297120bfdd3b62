"""Engines: the request engine (asyncio: asyncpg, aiosqlite) and schema work's (synchronous:
psycopg2, sqlite3), their pools, and what each connection is set up with (timeouts, SQLite's
pragmas and BEGIN IMMEDIATE, a transaction-mode pooler's needs). What runs on them, and the
request's unit of work, is app.database's.
"""

import logging
from functools import partial
from typing import Any

from pydantic_core import from_json
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from app.config import Settings
from app.pool_health import discard_unusable

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
        # The labels' JSON, one document per todo read: pydantic-core's parser, one C call
        # where json.loads takes five Python ones (a list page reads twenty).
        json_deserializer=from_json,
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
