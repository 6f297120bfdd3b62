"""Engine, declarative base and the per-request unit of work."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
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


def create_db_engine(settings: Settings, *, for_migrations: bool = False) -> Engine:
    if settings.is_sqlite:
        return _sqlite_engine(settings.database_url)
    connect_args: dict[str, Any] = {
        "connect_timeout": settings.db_connect_timeout,
        "application_name": settings.project_name,
        # Notice a peer that vanished (a failover, a cut network) instead of waiting forever.
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    if for_migrations:
        # Waiting for another process's migration (the advisory lock), or a long DDL, must
        # not hit the request timeout; a single connection, closed afterwards.
        return create_engine(settings.database_url, poolclass=NullPool, connect_args=connect_args)
    timeout = settings.db_statement_timeout_ms
    if timeout:
        idle = max(timeout * 2, 10_000)
        connect_args["options"] = (
            f"-c statement_timeout={timeout} -c idle_in_transaction_session_timeout={idle}"
        )
    return create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=settings.db_pool_recycle,
        # A pooled connection that died with a database restart is found and replaced on
        # checkout, so recovery needs no restart and costs no failed request.
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def _sqlite_engine(url: str) -> Engine:
    # check_same_thread: FastAPI runs sync routes in a thread pool, and a pooled connection may
    # be used by another thread than the one that opened it (never by two at once).
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        # SQLite's lower() folds ASCII only; q= must be case-insensitive for every script,
        # as it is on PostgreSQL.
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: a deferred transaction that reads and later writes
        # fails at once with SQLITE_BUSY when another connection committed in between, and
        # busy_timeout cannot help it. IMMEDIATE makes writers queue instead.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _unicode_lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: responses are built from the objects after the commit.
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)


def get_session(request: Request) -> Iterator[Session]:
    """One unit of work per request: commit on success, roll back on error (see AppError)."""
    session: Session = request.app.state.session_factory()
    try:
        yield session
        session.commit()
    except AppError as exc:
        if exc.persist_changes:
            session.commit()
        else:
            session.rollback()
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# scope="function": the commit above runs before the response is sent, so a failed commit
# becomes an error response instead of a 2xx for data that was never stored.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
