"""Fixtures: every API test runs against real SQLite and real PostgreSQL.

Each backend gets a database of its own for the whole run (a temporary SQLite file; a freshly
created PostgreSQL database, dropped at the end), migrated by the app's own startup. Tests
commit for real (concurrency tests need that), and every table is emptied after each test
(docs/adr/0004-tests-commit-for-real.md). Repository and service tests use the rolled-back
db_session instead (tests/support/sessions.py, docs/adr/0005-fast-tier-of-tests.md).
"""

import gc
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, inspect, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from app.config import Settings
from app.main import create_app
from app.models import Base, User
from tests.isolation import database_name

# The fast tier's rolled-back session (db_session): tests/support/sessions.py.
pytest_plugins = ["tests.support.sessions"]

DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
PASSWORD = "correct-horse-battery"
TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256"


# The test being set up, run or torn down: postgres_admin_url() checks it carries the
# `postgres` marker, so `-m "not postgres"` cannot select a test that reaches PostgreSQL.
_running: pytest.Item | None = None


def postgres_admin_url() -> str:
    """A PostgreSQL server the tests may create databases on, or skip/fail with the reason."""
    if _running is not None and _running.get_closest_marker("postgres") is None:
        pytest.fail(
            f"{_running.nodeid} uses PostgreSQL without the postgres marker: add its fixture to "
            "_POSTGRES_FIXTURES in tests/conftest.py or mark it @pytest.mark.postgres"
        )
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_POSTGRES_URL)
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return url
    except OperationalError as exc:
        reason = f"PostgreSQL not reachable at {make_url(url).render_as_string()}: {exc.orig}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires the PostgreSQL tests to run. {reason}")
        pytest.skip(f"SKIPPING POSTGRESQL TESTS. {reason} (set TEST_DATABASE_URL)")
    finally:
        engine.dispose()


@dataclass
class TempPostgres:
    """A throwaway PostgreSQL database, created on demand and dropped with force."""

    admin_url: str
    name: str

    @classmethod
    def create(cls, admin_url: str, role: str = "test") -> "TempPostgres":
        """Named by tests/isolation.py: TEST_DB_PREFIX, the role, a random part."""
        db = cls(admin_url, database_name(role))
        db._admin(f'CREATE DATABASE "{db.name}"')
        return db

    @property
    def url(self) -> str:
        return make_url(self.admin_url).set(database=self.name).render_as_string(False)

    def drop(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def _admin(self, sql: str) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(sql))
        finally:
            engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgres", "pgbouncer"])
def backend(request: pytest.FixtureRequest) -> str:
    """Where the API tests run: in process on SQLite or PostgreSQL, or (the core paths only,
    see pytest_collection_modifyitems) over HTTP against gunicorn behind PgBouncer."""
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The database itself (for pgbouncer: the direct URL, for the tests' own checks)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
        return
    database = TempPostgres.create(postgres_admin_url())
    try:
        yield database.url
    finally:
        database.drop()


@pytest.fixture
def database() -> Iterator[TempPostgres]:
    """A fresh, empty PostgreSQL database for one server run (runtime and fault tests)."""
    created = TempPostgres.create(postgres_admin_url(), role="server")
    try:
        yield created
    finally:
        created.drop()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all, for one test (migration and startup tests)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    database = TempPostgres.create(postgres_admin_url(), role="migrate")
    try:
        yield database.url
    finally:
        database.drop()


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def db_engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        environment="test",
        database_url=database_url,
        secret_key=TEST_SECRET,
        bcrypt_rounds=4,  # real bcrypt, at the lowest cost
        migration_lock_path=tmp_path / "migrations.lock",
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(request: pytest.FixtureRequest, backend: str, db_engine: Engine) -> Iterator[TestClient]:
    try:
        if backend == "pgbouncer":
            # httpx's Client, which TestClient is too: the tests read the same either way.
            with request.getfixturevalue("pooled_server").client() as http_client:
                yield http_client
        else:
            with TestClient(request.getfixturevalue("app")) as test_client:
                yield test_client
    finally:
        empty_tables(db_engine)


@pytest.fixture(scope="session")
def pooled_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """gunicorn (2 workers) as a Kubernetes pod runs it behind PgBouncer in transaction mode:
    DB_POOLER=transaction, no migration at startup (done before, over a direct connection)."""
    from app.engines import create_migration_engine
    from app.migrations import upgrade_to_head
    from tests.pgbouncer import APP_POOL_SIZE, pgbouncer
    from tests.runtime.server import app_env, gunicorn

    tmp_path = tmp_path_factory.mktemp("pooled")
    direct = Settings(_env_file=None, database_url=database_url)
    engine = create_migration_engine(direct)
    try:
        upgrade_to_head(
            direct.model_copy(update={"migration_lock_path": tmp_path / "m.lock"}), engine
        )
    finally:
        engine.dispose()
    with pgbouncer(tmp_path, database_url) as bouncer:
        env = app_env(
            bouncer.url(database_url),
            tmp_path,
            DB_POOLER="transaction",
            DB_POOL_SIZE=str(APP_POOL_SIZE),
            MIGRATE_ON_STARTUP="false",
        )
        with gunicorn(env, tmp_path, workers=2) as server:
            yield server


def empty_tables(engine: Engine) -> None:
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            names = ", ".join(table.name for table in Base.metadata.sorted_tables)
            connection.execute(text(f"TRUNCATE {names} CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())


@dataclass
class ApiUser:
    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def assert_bearer_401(response: "httpx.Response") -> None:
    """The contract's 401: a non-empty {"detail"} and WWW-Authenticate: Bearer."""
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str)
    assert body["detail"]


def deactivate(engine: Engine, user_id: str) -> None:
    """Deactivate a user behind the API's back, as a superuser's PATCH would."""
    with engine.begin() as connection:
        connection.execute(
            update(User).where(User.id == uuid.UUID(user_id)).values(is_active=False)
        )


def login(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, object]:
    response = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def make_user(client: TestClient, email: str | None = None, password: str = PASSWORD) -> ApiUser:
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    response = client.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    tokens = login(client, email, password)
    return ApiUser(
        id=response.json()["id"],
        email=response.json()["email"],
        password=password,
        access_token=str(tokens["access_token"]),
        refresh_token=str(tokens["refresh_token"]),
    )


@pytest.fixture
def user(client: TestClient) -> ApiUser:
    return make_user(client)


@pytest.fixture
def other_user(client: TestClient) -> ApiUser:
    return make_user(client)


# Tests that start servers, clusters or browsers run one after another on one xdist worker
# (they spawn processes of their own and measure time); the in-process API tests spread
# over the other.
_PROCESS_TESTS = ("tests/runtime/", "tests/faults/", "tests/browser/")
# The API's core paths, run once more over HTTP behind PgBouncer: CRUD with If-Match, list
# walks, the todo's date fields and labels (their filters and sorts in SQL, GET /labels),
# subtasks (their filters, moves and cascades under the parent's lock), recurring todos
# (completing one moves its due, with If-Match), the feed (its items as GET writes them),
# idempotent create and move races, creates racing for a client-chosen id, refresh rotation
# and reuse, logins and refreshes racing a password change or deactivation, throttle races,
# password change, admin deactivation.
# Tests that build an app in process (they ask for `app` or `settings`) are about that app,
# not the pooler, and run on the other backends only. tests/changes/test_wait.py is not here:
# it observes its waiters in the in-process app (app.state); waiting behind PgBouncer is
# tests/runtime/test_changes_wait.py's (and the cluster rig's, tests/cluster).
_POOLED_MODULES = (
    "tests/todos/test_crud.py",
    "tests/todos/test_list.py",
    "tests/todos/test_idempotency.py",
    "tests/todos/test_dates.py",
    "tests/todos/test_labels.py",
    "tests/todos/test_subtasks.py",
    "tests/todos/test_recurring.py",
    "tests/lists/test_idempotency.py",
    "tests/test_client_ids.py",
    "tests/todos/test_order.py",
    "tests/lists/test_lists.py",
    "tests/changes/test_feed.py",
    "tests/changes/test_documents.py",
    "tests/accounts/test_refresh.py",
    "tests/accounts/test_login_family.py",
    "tests/accounts/test_credential_generation.py",
    "tests/accounts/test_throttle.py",
    "tests/accounts/test_password.py",
    "tests/accounts/test_admin.py",
    "tests/test_caching.py",
)


# What gives a test PostgreSQL: a backend/empty database parametrised to it, or a fixture that
# creates one (`database`; the fault tests' and the cluster rig's own servers). Tests that
# create theirs in the body or a module's own fixture are marked where they are written.
_POSTGRES_PARAMS = {"backend": {"postgres", "pgbouncer"}, "empty_database_url": {"postgres"}}
_POSTGRES_FIXTURES = frozenset({"database", "cluster", "fault_database_url", "rig"})


def _needs_postgres(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        for name, values in _POSTGRES_PARAMS.items():
            if callspec.params.get(name) in values:
                return True
    return bool(set(getattr(item, "fixturenames", ())) & _POSTGRES_FIXTURES)


@pytest.fixture(autouse=True)
def _collect_garbage(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that reached PostgreSQL, a collection: a connection it left unclosed
    (garbage the collector finds: asyncpg's ResourceWarning, an error here) fails that test,
    at its teardown, instead of whichever test the collector happens to run in next."""
    yield
    if request.node.get_closest_marker("postgres") is not None:
        gc.collect()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    global _running
    _running = item


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    global _running
    _running = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        if item.nodeid.startswith(_PROCESS_TESTS):
            item.add_marker(pytest.mark.xdist_group("processes"))
        if _needs_postgres(item):
            item.add_marker(pytest.mark.postgres)
        (dropped if _in_process_only(item) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _in_process_only(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is None or callspec.params.get("backend") != "pgbouncer":
        return False
    fixtures = set(getattr(item, "fixturenames", ()))
    return not item.nodeid.startswith(_POOLED_MODULES) or bool(fixtures & {"app", "settings"})


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A private redis-server for this test process (tests/redis.py); tests flush it."""
    from tests.redis import redis_server

    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server
