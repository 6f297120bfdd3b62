"""Startup: RESET_DB rebuilds with demo data (never in production); a dead database is a 503;
a database at a revision this code does not know is refused in plain words."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, func, select, text

from alembic import command
from app.accounts.models import User
from app.config import Settings
from app.demo import DEMO_EMAIL, DEMO_PASSWORD
from app.main import create_app
from app.migration_guard import SchemaRefused
from app.migrations import ROOT, alembic_config, head_revision
from tests.conftest import TEST_SECRET, login, make_user
from tests.isolation import free_port


def test_reset_db_rebuilds_with_demo_data(
    client: TestClient, settings: Settings, db_engine: Engine
) -> None:
    make_user(client, "before-reset@example.com")
    reset_app = create_app(settings.model_copy(update={"reset_db": True}))
    with TestClient(reset_app) as fresh:
        tokens = login(fresh, DEMO_EMAIL, DEMO_PASSWORD)
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        params = {"sort": "position"}
        todos = fresh.get("/api/v1/todos", params=params, headers=headers).json()["items"]
        assert len(todos) == 6
        (inbox,) = fresh.get("/api/v1/lists", headers=headers).json()["items"]
        assert {todo["list_id"] for todo in todos} == {inbox["id"]}
        assert len({todo["position"] for todo in todos}) == 6
        assert todos[-1]["due_day"] is not None  # an all-day one too
    with db_engine.connect() as connection:
        emails = connection.scalars(select(User.email)).all()
    assert emails == [DEMO_EMAIL]


def test_reset_db_is_refused_in_production(
    client: TestClient, settings: Settings, db_engine: Engine
) -> None:
    make_user(client, "survivor@example.com")
    prod = settings.model_copy(update={"reset_db": True, "environment": "production"})
    with pytest.raises(RuntimeError, match="RESET_DB"), TestClient(create_app(prod)):
        pass
    with db_engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(User)) == 1


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://nobody@127.0.0.1:1/nothing",
        "sqlite:////nonexistent-directory/todo.db",
    ],
)
def test_unreachable_database_is_503_without_internals(settings: Settings, url: str) -> None:
    down = settings.model_copy(update={"database_url": url, "migrate_on_startup": False})
    with TestClient(create_app(down)) as client:
        response = client.post(
            "/api/v1/auth/register", json={"email": "x@example.com", "password": "password123"}
        )
        assert response.status_code == 503
        assert set(response.json()) == {"detail"}
        assert "Traceback" not in response.text
        assert "127.0.0.1" not in response.text
        assert client.get("/health").status_code == 200
        assert client.get("/health/ready").status_code == 503


UNKNOWN = "f00dfeedbeef"


def _at_unknown_revision(url: str) -> None:
    """A database a newer release or another branch migrated: at a revision this code lacks."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": UNKNOWN})
    finally:
        engine.dispose()


def _assert_plain_unknown_revision(message: str) -> None:
    assert f"at revision {UNKNOWN}, which this code does not know" in message
    assert "newer release or another branch" in message
    assert f"alembic downgrade {head_revision()}" in message  # what to run, with which code
    assert "new database" in message


def test_a_database_at_an_unknown_revision_refuses_startup_plainly(
    empty_database_url: str, tmp_path: Path
) -> None:
    _at_unknown_revision(empty_database_url)
    settings = Settings(
        _env_file=None,
        environment="test",
        database_url=empty_database_url,
        secret_key=TEST_SECRET,
        bcrypt_rounds=4,
        migration_lock_path=tmp_path / "m.lock",
    )
    with pytest.raises(SchemaRefused) as refused, TestClient(create_app(settings)):
        pass
    _assert_plain_unknown_revision(str(refused.value))
    # RESET_DB cannot downgrade from a revision it does not know either.
    reset = create_app(settings.model_copy(update={"reset_db": True}))
    with pytest.raises(SchemaRefused), TestClient(reset):
        pass


def _clean_env(tmp_path: Path, **env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    return clean | {"PYTHONPATH": str(ROOT), "MIGRATION_LOCK_PATH": str(tmp_path / "m.lock"), **env}


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_the_server_exits_non_zero_on_an_unknown_revision_without_a_traceback(
    tmp_path: Path, log_format: str
) -> None:
    """uvicorn as `make run` starts it: the reason in a few lines, and a non-zero exit."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    _at_unknown_revision(url)
    env = _clean_env(
        tmp_path, DATABASE_URL=url, SECRET_KEY=TEST_SECRET, LOG_FORMAT=log_format, BCRYPT_ROUNDS="4"
    )
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(free_port())]
    result = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    if log_format == "json":
        records = [json.loads(line) for line in result.stdout.splitlines()]
        message = next(r["message"] for r in records if UNKNOWN in r["message"])
    else:
        message = output
    _assert_plain_unknown_revision(message)


def test_the_migration_job_refuses_an_unknown_revision_without_a_traceback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    _at_unknown_revision(url)
    result = subprocess.run(
        [sys.executable, "-m", "app.migrations"],
        cwd=tmp_path,
        env=_clean_env(tmp_path, DATABASE_URL=url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    _assert_plain_unknown_revision(result.stdout)
