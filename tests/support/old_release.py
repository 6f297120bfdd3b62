"""The schema as an earlier release wrote it, for migration tests: a synchronous engine on a
test database, alembic up or down to a revision, and rows inserted as that release did (it
knew no list_id or position). Shared by tests/lists and tests/changes; test modules import
helpers from here, never from one another (tests/test_imports.py)."""

import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from alembic import command
from app.config import Settings
from app.engines import create_migration_engine
from app.migrations import alembic_config
from tests.conftest import TEST_SECRET

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# The tables as the release before this one writes them (it knows no list_id or position).
USERS = sa.table(
    "users",
    sa.column("id", sa.Uuid),
    sa.column("email", sa.String),
    sa.column("hashed_password", sa.String),
    sa.column("is_active", sa.Boolean),
    sa.column("is_superuser", sa.Boolean),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
TODOS = sa.table(
    "todos",
    sa.column("id", sa.Uuid),
    sa.column("owner_id", sa.Uuid),
    sa.column("title", sa.String),
    sa.column("completed", sa.Boolean),
    sa.column("priority", sa.Integer),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("version", sa.Integer),
)


def migration_engine(url: str, tmp_path: Path) -> Engine:
    settings = Settings(
        _env_file=None, database_url=url, secret_key=TEST_SECRET,
        migration_lock_path=tmp_path / "m.lock",
    )  # fmt: skip
    return create_migration_engine(settings)


def migrate(engine: Engine, target: str, down: bool = False) -> None:
    with engine.begin() as connection:
        (command.downgrade if down else command.upgrade)(alembic_config(connection), target)


def old_release_user(connection: Connection) -> uuid.UUID:
    user_id = uuid.uuid4()
    connection.execute(
        sa.insert(USERS).values(
            id=user_id, email=f"{user_id.hex}@example.com", hashed_password="x",
            is_active=True, is_superuser=False, created_at=T0, updated_at=T0,
        )
    )  # fmt: skip
    return user_id


def old_release_todo(connection: Connection, owner: uuid.UUID, created: datetime) -> uuid.UUID:
    todo_id = uuid.uuid4()
    connection.execute(
        sa.insert(TODOS).values(
            id=todo_id, owner_id=owner, title="t", completed=False, priority=1,
            created_at=created, updated_at=created, version=1,
        )
    )  # fmt: skip
    return todo_id
