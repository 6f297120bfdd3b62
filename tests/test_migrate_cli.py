"""Migrations as a step of their own (`python -m app.migrations`, the Kubernetes Job), over
MIGRATION_DATABASE_URL when set; and which startup switch wins when they disagree."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from alembic import command
from app.config import Settings
from app.main import create_app
from app.migrations import ROOT, alembic_config, schema_is_current
from app.models import Base
from tests.conftest import TEST_SECRET, TempPostgres, postgres_admin_url, table_names

APP_TABLES = set(Base.metadata.tables) | {"alembic_version"}
# Nothing listens on port 1: a DATABASE_URL that any connection attempt would fail on.
UNREACHABLE = "postgresql://nobody:hunter2-db-password@127.0.0.1:1/nothing"


@pytest.mark.parametrize(
    ("reset_db", "update_db", "migrate_on_startup", "expected"),
    [
        (False, False, True, "migrate"),  # the default: a lone container migrates itself
        (False, False, False, "skip"),  # Kubernetes: the Job migrates, the pods do not
        (False, True, False, "migrate"),  # UPDATE_DB=1 asks for it: it wins over false
        (False, True, True, "migrate"),
        (True, False, False, "reset"),  # RESET_DB=1 wins over everything else
        (True, True, True, "reset"),
    ],
)
def test_the_switch_that_asks_for_more_work_wins(
    reset_db: bool, update_db: bool, migrate_on_startup: bool, expected: str
) -> None:
    settings = Settings(
        _env_file=None,
        reset_db=reset_db,
        update_db=update_db,
        migrate_on_startup=migrate_on_startup,
    )
    assert settings.schema_on_startup == expected


def test_switches_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPDATE_DB", "1")
    monkeypatch.setenv("MIGRATE_ON_STARTUP", "false")
    monkeypatch.setenv("MIGRATION_DATABASE_URL", "postgresql://todo@db-rw:5432/todo")
    settings = Settings(_env_file=None)
    assert settings.schema_on_startup == "migrate"
    assert settings.for_schema_work().database_url == "postgresql://todo@db-rw:5432/todo"


def test_blank_migration_url_means_database_url() -> None:
    settings = Settings(_env_file=None, database_url="sqlite:///x.db", migration_database_url=" ")
    assert settings.for_schema_work().database_url == "sqlite:///x.db"


def test_migration_url_must_name_a_known_database() -> None:
    with pytest.raises(ValueError, match="MIGRATION_DATABASE_URL must start with"):
        Settings(_env_file=None, migration_database_url="mysql://x@y/z")


def test_behind_a_transaction_pooler_startup_migrations_need_a_direct_url() -> None:
    pooled = {"database_url": UNREACHABLE, "db_pooler": "transaction"}
    with pytest.raises(ValueError, match="MIGRATION_DATABASE_URL"):
        Settings(_env_file=None, **pooled)  # MIGRATE_ON_STARTUP defaults to true
    with pytest.raises(ValueError, match="MIGRATION_DATABASE_URL"):
        Settings(_env_file=None, migrate_on_startup=False, update_db=True, **pooled)
    Settings(_env_file=None, migrate_on_startup=False, **pooled)  # a Job migrates instead
    Settings(_env_file=None, migration_database_url="postgresql://x@db-rw/todo", **pooled)


MIGRATE = [sys.executable, "-m", "app.migrations"]


def _job_env(workdir: Path, **env: str) -> dict[str, str]:
    """The Job's environment: settings from these variables only, a lock file of its own, and
    not development (which also fingerprints migration files: app.migration_guard)."""
    clean = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    job = {"PYTHONPATH": str(ROOT), "MIGRATION_LOCK_PATH": str(workdir / "m.lock")}
    return clean | job | {"ENVIRONMENT": "test", **env}


def _migrate(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
        [*MIGRATE, *args],
        cwd=tmp_path,  # no .env of the checkout's
        env=_job_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_migrates_once_then_finds_head(empty_database_url: str, tmp_path: Path) -> None:
    first = _migrate(tmp_path, DATABASE_URL=empty_database_url)
    assert first.returncode == 0, first.stderr
    assert "(migrated)" in first.stdout
    assert table_names(empty_database_url) == APP_TABLES
    again = _migrate(tmp_path, DATABASE_URL=empty_database_url)
    assert again.returncode == 0, again.stderr
    assert "(unchanged)" in again.stdout


def test_cli_connects_with_migration_database_url(empty_database_url: str, tmp_path: Path) -> None:
    # DATABASE_URL (the pooler, for requests) is never touched: only the migration URL works.
    result = _migrate(tmp_path, DATABASE_URL=UNREACHABLE, MIGRATION_DATABASE_URL=empty_database_url)
    assert result.returncode == 0, result.stderr
    assert table_names(empty_database_url) == APP_TABLES


def test_cli_failure_exits_non_zero_without_the_password(tmp_path: Path) -> None:
    result = _migrate(
        tmp_path, DATABASE_URL="sqlite:///unused.db", MIGRATION_DATABASE_URL=UNREACHABLE
    )
    assert result.returncode == 1
    assert "migration failed" in result.stdout
    assert "hunter2" not in result.stderr + result.stdout


def test_cli_refuses_to_migrate_through_a_transaction_pooler(tmp_path: Path) -> None:
    result = _migrate(
        tmp_path, DATABASE_URL=UNREACHABLE, DB_POOLER="transaction", MIGRATE_ON_STARTUP="false"
    )
    assert result.returncode == 2
    assert "MIGRATION_DATABASE_URL" in result.stdout + result.stderr


def test_wait_passes_only_once_the_schema_is_current(tmp_path: Path) -> None:
    # The pods' init container: fails (and is retried) until the Job has migrated.
    url = f"sqlite:///{tmp_path / 'app.db'}"
    early = _migrate(tmp_path, "--wait", "0", DATABASE_URL=url)
    assert early.returncode == 1
    assert "has the migration run?" in early.stdout
    assert table_names(url) == set()  # waiting never migrates
    assert _migrate(tmp_path, DATABASE_URL=url).returncode == 0
    assert _migrate(tmp_path, "--wait", "0", DATABASE_URL=url).returncode == 0


def test_a_newer_release_schema_counts_as_current(tmp_path: Path) -> None:
    # After a rollback the database is at a revision this code has never seen: expand/contract
    # keeps that schema usable by the release before, so its pods must not wait forever.
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = create_engine(url)
    try:
        assert not schema_is_current(engine)
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
        assert schema_is_current(engine)
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))
        assert schema_is_current(engine)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_concurrent_cli_runs_migrate_exactly_once(tmp_path: Path) -> None:
    # Two pods, two file systems: only the PostgreSQL advisory lock keeps them apart.
    database = TempPostgres.create(postgres_admin_url(), role="migrate")
    try:
        runs = []
        for name in ("a", "b", "c"):
            pod = tmp_path / name
            pod.mkdir()
            runs.append(
                subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
                    MIGRATE,
                    cwd=pod,
                    env=_job_env(pod, DATABASE_URL=database.url),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        outputs = [run.communicate(timeout=120)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0, 0], outputs
        assert sum("(migrated)" in output for output in outputs) == 1
        assert table_names(database.url) == APP_TABLES
    finally:
        database.drop()


def _start(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200


def test_startup_skips_the_schema_when_told(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    _start(_app_settings(url, tmp_path, migrate_on_startup=False))
    assert table_names(url) == set()


def test_update_db_migrates_at_startup_over_the_migration_url(tmp_path: Path) -> None:
    requests_db = f"sqlite:///{tmp_path / 'requests.db'}"
    schema_db = f"sqlite:///{tmp_path / 'schema.db'}"
    settings = _app_settings(
        requests_db,
        tmp_path,
        migrate_on_startup=False,
        update_db=True,
        migration_database_url=schema_db,
    )
    _start(settings)
    assert table_names(schema_db) == APP_TABLES
    assert table_names(requests_db) == set()


def _app_settings(url: str, tmp_path: Path, **update: object) -> Settings:
    return Settings(
        _env_file=None,
        environment="test",
        database_url=url,
        secret_key=TEST_SECRET,
        bcrypt_rounds=4,
        migration_lock_path=tmp_path / "migrations.lock",
        **update,  # type: ignore[arg-type]
    )
