"""The fast tier: an AsyncSession per test whose work is rolled back, not committed.

For repository and service tests (a function and the database, no HTTP): each test runs in
one outer transaction on one connection of the app's own engine (create_db_engine: its
dialects, drivers, SQLite pragmas and listeners), and the session joins it with
join_transaction_mode="create_savepoint" (SQLAlchemy's "Joining a Session into an External
Transaction" recipe). What the code under test commits, `transaction(session)` included,
ends a SAVEPOINT; the test's end rolls the outer transaction back. No table is emptied and
nothing is committed, so these tests are quick and leave nothing behind.

What this tier cannot show, and why the HTTP tests keep committing for real
(docs/adr/0004-tests-commit-for-real.md): a failure at COMMIT (deferred constraints), two
transactions racing (locks, retries, unique violations between concurrent writers), the
request's own unit of work. Such tests belong to the HTTP tier.

The session keeps the app's guard: it starts in autocommit mode (the AUTOCOMMIT flag), so a
second write outside `transaction(session)` raises here as it does in a request.

Runs on SQLite and PostgreSQL (the `backend` parameter; the PostgreSQL runs carry the
`postgres` marker, so `-m "not postgres"` keeps the SQLite ones only). Tests are `async def`
under anyio's pytest plugin: `pytestmark = pytest.mark.anyio`.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from app.config import Settings
from app.engines import AUTOCOMMIT, create_db_engine, create_migration_engine
from app.migrations import upgrade_to_head

# The outer transaction's isolation on PostgreSQL: what transaction(session) asks for. A
# SAVEPOINT cannot change it, so the request for it is dropped (_keep_outer_isolation).
ISOLATION = "READ COMMITTED"


@pytest.fixture(scope="session")
def migrated_database_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The run's database for this backend (conftest's `database_url`), brought to head once:
    the fast tier may run before any HTTP test has started the app that would migrate it."""
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        migration_lock_path=tmp_path_factory.mktemp("fast") / "migrations.lock",
    )
    engine = create_migration_engine(settings)
    try:
        upgrade_to_head(settings, engine)
    finally:
        engine.dispose()
    return database_url


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the servers' loop (uvicorn's), and asyncpg's


@pytest.fixture
async def db_session(migrated_database_url: str, tmp_path: Path) -> AsyncIterator[AsyncSession]:
    """An AsyncSession whose every change is rolled back after the test (see the module)."""
    async with rolled_back_session(migrated_database_url, tmp_path) as session:
        yield session


@asynccontextmanager
async def rolled_back_session(database_url: str, tmp_path: Path) -> AsyncIterator[AsyncSession]:
    """db_session's work: a session in an outer transaction, rolled back on the way out."""
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        migration_lock_path=tmp_path / "migrations.lock",
    )
    engine = create_db_engine(settings)
    event.listen(engine.sync_engine, "set_connection_execution_options", _keep_outer_isolation)
    try:
        async with engine.connect() as connection:
            # A real BEGIN: on PostgreSQL the engine's connections are in driver autocommit,
            # on SQLite app.database emits BEGIN IMMEDIATE only when AUTOCOMMIT is off.
            outer: dict[str, Any] = {AUTOCOMMIT: False}
            if connection.dialect.name == "postgresql":
                outer["isolation_level"] = ISOLATION
            await connection.execution_options(**outer)
            transaction = await connection.begin()
            # From here on the session is in the app's autocommit mode (its write guard).
            await connection.execution_options(**{AUTOCOMMIT: True})
            session = AsyncSession(
                bind=connection,
                join_transaction_mode="create_savepoint",
                expire_on_commit=False,
                autoflush=False,
            )
            assert connection.sync_connection is not None  # connected above
            back = partial(_back_to_autocommit, connection.sync_connection)
            event.listen(session.sync_session, "after_transaction_end", back)
            try:
                yield session
            finally:
                await session.close()
                await transaction.rollback()
    finally:
        await engine.dispose()


def _keep_outer_isolation(connection: Connection, options: dict[str, Any]) -> None:
    """transaction(session) asks for READ COMMITTED on a connection that is inside the outer
    transaction already (SQLAlchemy refuses to change the level there): it is that level."""
    if connection.in_transaction() and "isolation_level" in options:
        asked = options.pop("isolation_level")
        if asked != ISOLATION:
            pytest.fail(f"isolation {asked!r} asked inside the fast tier's {ISOLATION} transaction")


def _back_to_autocommit(connection: Connection, _: Session, ended: SessionTransaction) -> None:
    """After transaction(session) the app's next statement autocommits on a fresh connection
    from the pool; here the connection is the same one, so its flag is put back."""
    if ended.parent is None:
        connection.execution_options(**{AUTOCOMMIT: True})
