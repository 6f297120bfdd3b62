"""Declarative base, column types and the request's unit of work: a SQLAlchemy AsyncSession.

Requests run on an asyncio engine (asyncpg, aiosqlite): a request waits for the database
without holding a thread, and a worker needs no thread hand-offs per request. Schema work
(migrations, RESET_DB) runs on a synchronous engine (psycopg2, sqlite3) before serving. The
engines themselves, and how their connections are set up: app.engines. Why the request's
session autocommits and what transaction() is for: docs/adr/0001-autocommit-unit-of-work.md.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session
from sqlalchemy.types import TypeDecorator

from app.engines import AUTOCOMMIT

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

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        # asyncpg reads timestamptz in binary and hands back aware UTC datetimes (whatever the
        # session's TimeZone), except for the two infinities, which come naive (datetime.min
        # and .max: what it writes for them). One plain function per value instead of
        # TypeDecorator's two calls: six datetime columns on each of a list page's rows.
        # psycopg2 follows the session's TimeZone and SQLite's values are naive: both convert.
        if dialect.driver == "asyncpg":
            return _aware
        return super().result_processor(dialect, coltype)


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def utcnow() -> datetime:
    return datetime.now(UTC)


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
