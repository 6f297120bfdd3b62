"""DB_POOLER=transaction against a real PgBouncer in transaction mode (Debian's 1.18).

The API suite's core paths also run through it (the `pgbouncer` backend in tests/conftest.py);
these tests show what the setting is for: without it the service breaks behind the pooler,
and with it the timeouts still hold, without asking PgBouncer to ignore startup parameters.
"""

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine, text

from app.config import Settings
from app.database import create_sessionmaker, transaction
from app.engines import create_db_engine, create_migration_engine
from app.migrations import upgrade_to_head
from tests.conftest import TempPostgres
from tests.pgbouncer import APP_POOL_SIZE, PgBouncer, pgbouncer
from tests.runtime.server import Server, app_env, gunicorn

PASSWORD = "correct-horse-battery"


@pytest.fixture
def migrated(database: TempPostgres, tmp_path: Path) -> str:
    """A fresh database at head, migrated directly (as the Kubernetes Job does)."""
    settings = Settings(
        _env_file=None, database_url=database.url, migration_lock_path=tmp_path / "m.lock"
    )
    engine = create_migration_engine(settings)
    try:
        upgrade_to_head(settings, engine)
    finally:
        engine.dispose()
    return database.url


@pytest.fixture
def bouncer(migrated: str, tmp_path: Path) -> Iterator[PgBouncer]:
    with pgbouncer(tmp_path, migrated) as running:
        yield running


@contextmanager
def _serve(
    bouncer: PgBouncer, direct_url: str, tmp_path: Path, *, ready: bool = True, **env: str
) -> Iterator[Server]:
    """2 workers as a pod runs them: through the pooler, no migration at startup."""
    settings = app_env(
        bouncer.url(direct_url),
        tmp_path,
        DB_POOL_SIZE=str(APP_POOL_SIZE),
        MIGRATE_ON_STARTUP="false",
        # The load below is 160 failed logins from one address: the bookkeeping, not the
        # address-wide throttle, is what it exercises.
        LOGIN_MAX_ADDRESS_FAILURES="100000",
        **env,
    )
    with gunicorn(settings, tmp_path, workers=2, ready=ready) as server:
        yield server


def _token(client: httpx.Client, email: str) -> dict[str, str]:
    body = {"email": email, "password": PASSWORD}
    assert client.post("/api/v1/auth/register", json=body).status_code == 201
    form = {"username": email, "password": PASSWORD}
    response = client.post("/api/v1/auth/token", data=form)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _load(server: Server, threads: int = 8, each: int = 40) -> list[int]:
    """Requests that each need the database (readiness, failed logins with their throttle
    bookkeeping) from several keep-alive connections at once, as workers see them."""

    def run(worker: int) -> list[int]:
        statuses = []
        with server.client() as client:
            for i in range(each):
                if i % 2:
                    response = client.get("/health/ready")
                else:
                    form = {"username": f"w{worker}-{i}@example.com", "password": "x" * 8}
                    response = client.post("/api/v1/auth/token", data=form)
                statuses.append(response.status_code)
        return statuses

    with ThreadPoolExecutor(threads) as pool:
        return [status for batch in pool.map(run, range(threads)) for status in batch]


def test_without_the_setting_prepared_statements_break(
    bouncer: PgBouncer, migrated: str, tmp_path: Path
) -> None:
    # The statement and lock timeouts off: with them, every connection is refused at once
    # ("unsupported startup parameter: statement_timeout"), which hides the deeper problem.
    off = {"DB_STATEMENT_TIMEOUT_MS": "0", "LOCK_TIMEOUT_MS": "0"}
    with _serve(bouncer, migrated, tmp_path, ready=False, **off) as server:
        statuses = _load(server)
        log = server.log()
    failed = [status for status in statuses if status not in (200, 401)]
    assert failed, f"every request succeeded without DB_POOLER: {sorted(set(statuses))}"
    assert "prepared statement" in log


def test_without_the_setting_the_timeouts_are_refused_at_connect(
    bouncer: PgBouncer, migrated: str, tmp_path: Path
) -> None:
    with _serve(bouncer, migrated, tmp_path, ready=False) as server, server.client() as client:
        assert client.get("/health/ready").status_code == 503
    assert "unsupported startup parameter" in bouncer.log()


def test_with_the_setting_the_same_load_succeeds(
    bouncer: PgBouncer, migrated: str, tmp_path: Path
) -> None:
    with _serve(bouncer, migrated, tmp_path, DB_POOLER="transaction") as server:
        statuses = _load(server)
        log = server.log()
    assert set(statuses) == {200, 401}, sorted(set(statuses))
    assert "prepared statement" not in log


def test_a_slow_statement_is_cut_at_the_limit_through_the_pooler(
    bouncer: PgBouncer, migrated: str, tmp_path: Path
) -> None:
    """A table locked from outside: a single statement (autocommit, cut by asyncpg's cancel)
    and a transaction (SET LOCAL statement_timeout) each get a 503 at about the limit, and
    nothing is left waiting on the server."""
    env = {"DB_POOLER": "transaction", "DB_STATEMENT_TIMEOUT_MS": "1000"}
    locker = create_engine(migrated)
    try:
        with _serve(bouncer, migrated, tmp_path, **env) as server, server.client() as client:
            headers = _token(client, "slow@example.com")
            keyed = {**headers, "Idempotency-Key": "slow-1"}  # runs in a transaction
            body = {"title": "x"}
            with locker.begin() as lock:
                lock.execute(text("LOCK TABLE todos IN ACCESS EXCLUSIVE MODE"))
                timings = [
                    _timed(lambda: client.get("/api/v1/todos/stats", headers=headers)),
                    _timed(lambda: client.post("/api/v1/todos", json=body, headers=keyed)),
                ]
                with locker.connect() as observer:
                    waiting = observer.scalar(text(_WAITING_ON_LOCKS))
    finally:
        locker.dispose()
    assert [status for status, _ in timings] == [503, 503], timings
    assert all(0.9 <= seconds < 3 for _, seconds in timings), timings
    assert waiting == 0


_WAITING_ON_LOCKS = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
)


def _timed(send: Callable[[], httpx.Response]) -> tuple[int, float]:
    started = time.monotonic()
    status = send().status_code
    return status, time.monotonic() - started


def test_transactions_through_the_pooler_carry_their_own_timeouts(
    bouncer: PgBouncer, migrated: str, tmp_path: Path
) -> None:
    """SET LOCAL inside every transaction; nothing set on the shared server connections."""
    settings = Settings(
        _env_file=None,
        database_url=bouncer.url(migrated),
        db_pooler="transaction",
        db_statement_timeout_ms=1234,
        migrate_on_startup=False,  # migrations never go through the pooler
    )

    async def observe() -> tuple[str, str, str]:
        engine = create_db_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session:
                async with transaction(session):
                    statement = (await session.execute(text("SHOW statement_timeout"))).scalar()
                    idle = (
                        await session.execute(text("SHOW idle_in_transaction_session_timeout"))
                    ).scalar()
                outside = (await session.execute(text("SHOW statement_timeout"))).scalar()
            return str(statement), str(idle), str(outside)
        finally:
            await engine.dispose()

    statement, idle, outside = asyncio.run(observe())
    assert statement == "1234ms"
    assert idle == "10s"
    assert outside == "0"  # the server's default: no session state left behind
