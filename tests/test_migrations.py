"""The schema comes from Alembic alone: up, down, up again, and the models agree with it."""

import os
import subprocess
import sys
import threading
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from alembic import command
from app.config import Settings
from app.database import create_migration_engine
from app.migrations import ROOT, alembic_config, head_revision, upgrade_to_head
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
