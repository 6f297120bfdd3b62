"""The schema comes from Alembic alone: up, down, up again, and the models agree with it."""

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from filelock import FileLock
from sqlalchemy import create_engine, inspect

from alembic import command
from app.config import Settings
from app.database import create_migration_engine
from app.migration_guard import SchemaRefused
from app.migrations import (
    ROOT,
    alembic_config,
    head_revision,
    migration_lock_path,
    upgrade_to_head,
)
from app.models import Base
from tests.conftest import TEST_SECRET, table_names

APP_TABLES = set(Base.metadata.tables)


def _settings(url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=url,
        secret_key=TEST_SECRET,
        migration_lock_path=tmp_path / "migrate.lock",
    )


def test_upgrade_downgrade_upgrade(empty_database_url: str, tmp_path: Path) -> None:
    engine = create_migration_engine(_settings(empty_database_url, tmp_path))
    try:
        for target, expected in [("head", APP_TABLES), ("base", set()), ("head", APP_TABLES)]:
            with engine.begin() as connection:
                run = command.upgrade if target == "head" else command.downgrade
                run(alembic_config(connection), target)
            assert table_names(empty_database_url) - {"alembic_version"} == expected
    finally:
        engine.dispose()


# SQLite's reflection reads no expression index (ix_todos_owner_due_at, ADR 0401), so Alembic
# compares none: test_expression_indexes_are_there checks it by name instead.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_models_match_migrations(empty_database_url: str, tmp_path: Path) -> None:
    engine = create_migration_engine(_settings(empty_database_url, tmp_path))
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_expression_indexes_are_there(empty_database_url: str, tmp_path: Path) -> None:
    engine = create_migration_engine(_settings(empty_database_url, tmp_path))
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
            if connection.dialect.name == "sqlite":
                found = "SELECT sql FROM sqlite_master WHERE name = 'ix_todos_owner_due_at'"
            else:
                found = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_todos_owner_due_at'"
            definition = connection.exec_driver_sql(found).scalar()
        assert "coalesce(due_day_starts_at, due_date)" in str(definition).lower()
    finally:
        engine.dispose()


def test_alembic_command_line(empty_database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": empty_database_url}
    alembic = [sys.executable, "-m", "alembic"]
    for args, expected in [(["upgrade", "head"], APP_TABLES), (["downgrade", "base"], set())]:
        result = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
            [*alembic, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert table_names(empty_database_url) - {"alembic_version"} == expected


def test_concurrent_startups_migrate_exactly_once(empty_database_url: str, tmp_path: Path) -> None:
    settings = _settings(empty_database_url, tmp_path)
    results: list[bool] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def start_worker() -> None:
        engine = create_migration_engine(settings)
        try:
            barrier.wait()
            results.append(upgrade_to_head(settings, engine))
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=start_worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(results) == [False] * 7 + [True]
    engine = create_migration_engine(settings)
    try:
        with engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == head_revision()
    finally:
        engine.dispose()


def _default_lock(url: str) -> Path:
    """The lock file a process migrating `url` takes, with MIGRATION_LOCK_PATH unset."""
    return migration_lock_path(Settings(_env_file=None, database_url=url))


def test_the_migration_lock_is_per_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two checkouts on one machine, each with its own ./todo.db: two databases, two locks.
    for checkout in ("a", "b"):
        (tmp_path / checkout).mkdir()
    monkeypatch.chdir(tmp_path / "a")
    in_a = _default_lock("sqlite:///./todo.db")
    assert in_a == _default_lock(f"sqlite:///{tmp_path / 'a' / 'todo.db'}")
    monkeypatch.chdir(tmp_path / "b")
    assert _default_lock("sqlite:///./todo.db") != in_a
    # One PostgreSQL database, however the URL spells it (driver, password): one lock, shared
    # by every worker of a container; another database or server: another lock.
    pg = "postgresql://todo:secret@db:5432/todo"
    same = {
        _default_lock(url)
        for url in (
            pg,
            "postgresql+asyncpg://todo:other@db:5432/todo",
            "postgres://todo@db:5432/todo",
        )
    }
    assert len(same) == 1
    others = {
        _default_lock(u) for u in ("postgresql://todo@db/other", "postgresql://todo@db2/todo")
    }
    assert same.isdisjoint(others)
    assert len(others) == 2
    assert "secret" not in str(same.pop())
    # MIGRATION_LOCK_PATH still wins, and schema work locks the database it connects to.
    chosen = tmp_path / "chosen.lock"
    assert migration_lock_path(Settings(_env_file=None, migration_lock_path=chosen)) == chosen
    direct = Settings(_env_file=None, database_url=pg, migration_database_url="postgresql://x@y/z")
    assert migration_lock_path(direct) == _default_lock("postgresql://x@y/z")


def test_a_migration_on_one_database_does_not_wait_for_another(tmp_path: Path) -> None:
    """Another checkout migrating its own database (here: its lock held) holds nobody else up."""
    free = Settings(
        _env_file=None, environment="test", database_url=f"sqlite:///{tmp_path / 'free.db'}"
    )
    busy = free.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'busy.db'}"})
    done = threading.Event()

    def migrate_free() -> None:
        engine = create_migration_engine(free)
        try:
            upgrade_to_head(free, engine)
            done.set()
        finally:
            engine.dispose()

    with FileLock(str(migration_lock_path(busy))):
        worker = threading.Thread(target=migrate_free)
        worker.start()
        finished = done.wait(timeout=60)
    worker.join(timeout=300)
    assert finished, "the migration of free.db waited for busy.db's lock"
    assert table_names(free.database_url) == APP_TABLES | {"alembic_version"}


SCRATCH = '''"""scratch: a migration being written

Revision ID: 5c7a7c4b0001
Revises: {down}
"""

import sqlalchemy as sa

from alembic import op

revision = "5c7a7c4b0001"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("scratch", sa.Column("id", sa.Integer, primary_key=True){columns})


def downgrade() -> None:
    op.drop_table("scratch")
'''


def _scripts_with_scratch(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of alembic/ with one more migration, the one a developer is writing."""
    scripts = tmp_path / "alembic"
    shutil.copytree(ROOT / "alembic", scripts, ignore=shutil.ignore_patterns("__pycache__"))
    scratch = scripts / "versions" / "2099_01_01_0000-5c7a7c4b0001_scratch.py"
    scratch.write_text(SCRATCH.format(down=head_revision(), columns=""))
    return scripts, scratch


def _scratch_columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {column["name"] for column in inspect(engine).get_columns("scratch")}
    finally:
        engine.dispose()


def test_development_refuses_a_migration_that_changed_after_it_was_applied(
    empty_database_url: str, tmp_path: Path
) -> None:
    """make dev applied a half-written migration on a reload; later edits never ran and
    nothing said so. Now the next start refuses, naming the file and what to do."""
    scripts, scratch = _scripts_with_scratch(tmp_path)
    settings = _settings(empty_database_url, tmp_path)  # ENVIRONMENT=development
    engine = create_migration_engine(settings)
    try:
        assert upgrade_to_head(settings, engine, scripts) is True
        assert upgrade_to_head(settings, engine, scripts) is False  # unchanged: starts as ever
        scratch.write_text(
            SCRATCH.format(down=head_revision(), columns=', sa.Column("note", sa.Text)')
        )
        with pytest.raises(SchemaRefused) as refused:
            upgrade_to_head(settings, engine, scripts)
        message = str(refused.value)
        assert scratch.name in message
        assert "changed after it was applied" in message
        assert f"alembic downgrade {head_revision()}" in message  # before the changed one
        assert _scratch_columns(empty_database_url) == {"id"}
        # What the message says to do: downgrade past it (with the file as applied), then start.
        scratch.write_text(SCRATCH.format(down=head_revision(), columns=""))
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection, scripts), head_revision() or "base")
        scratch.write_text(
            SCRATCH.format(down=head_revision(), columns=', sa.Column("note", sa.Text)')
        )
        assert upgrade_to_head(settings, engine, scripts) is True
        assert _scratch_columns(empty_database_url) == {"id", "note"}
    finally:
        engine.dispose()


def test_outside_development_migration_files_are_not_fingerprinted(tmp_path: Path) -> None:
    # A release's files do not change under a running deployment, and a reformatted file in a
    # later release must not stop production: only development keeps the fingerprints.
    url = f"sqlite:///{tmp_path / 'prod.db'}"
    scripts, scratch = _scripts_with_scratch(tmp_path)
    settings = _settings(url, tmp_path).model_copy(update={"environment": "production"})
    engine = create_migration_engine(settings)
    try:
        assert upgrade_to_head(settings, engine, scripts) is True
        scratch.write_text(scratch.read_text() + "\n# reformatted\n")
        assert upgrade_to_head(settings, engine, scripts) is False
    finally:
        engine.dispose()
    assert table_names(url) == APP_TABLES | {"alembic_version", "scratch"}
