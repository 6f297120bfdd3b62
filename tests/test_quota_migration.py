"""The account_usage migration: existing accounts get their counts, the triggers keep them
through inserts and deletes of any release (and cascades), and it goes down and up again."""

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from tests.support.old_release import migrate, migration_engine, old_release_user

BEFORE_USAGE = "a7e3c91d5b20"  # the revision before account_usage


def _sql(connection: Connection, sql: str, **params: object) -> sa.CursorResult[Any]:
    """Plain SQL, with the ids bound as the UUID type (SQLite stores them as hex text)."""
    uuids = [
        sa.bindparam(name, type_=sa.Uuid) for name, v in params.items() if isinstance(v, uuid.UUID)
    ]
    return connection.execute(sa.text(sql).bindparams(*uuids), params)


def _inbox(connection: Connection, owner: uuid.UUID) -> uuid.UUID:
    sql = "SELECT id FROM lists WHERE owner_id = :o AND is_default"
    return uuid.UUID(str(_sql(connection, sql, o=owner).scalar_one()))


def _add_todos(connection: Connection, owner: uuid.UUID, list_id: uuid.UUID, count: int) -> None:
    """As any release writes them: a plain INSERT, many rows in one statement."""
    todos = sa.table(
        "todos", sa.column("id", sa.Uuid), sa.column("owner_id", sa.Uuid),
        sa.column("list_id", sa.Uuid), sa.column("position", sa.String),
        sa.column("title", sa.String), sa.column("completed", sa.Boolean),
        sa.column("priority", sa.Integer), sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)), sa.column("version", sa.Integer),
    )  # fmt: skip
    base = uuid.uuid4().int % 10**6 * 1000
    now = datetime.now(UTC)
    rows = [
        {"id": uuid.uuid4(), "owner_id": owner, "list_id": list_id,
         "position": str(base + i).zfill(10), "title": "t", "completed": False, "priority": 1,
         "created_at": now, "updated_at": now, "version": 1}
        for i in range(count)
    ]  # fmt: skip
    connection.execute(sa.insert(todos), rows)


def _usage(connection: Connection, owner: uuid.UUID) -> tuple[int, int] | None:
    sql = "SELECT todos, lists FROM account_usage WHERE user_id = :o"
    row = _sql(connection, sql, o=owner).first()
    return None if row is None else (row.todos, row.lists)


def test_counts_are_filled_and_kept(empty_database_url: str, tmp_path: Path) -> None:
    engine = migration_engine(empty_database_url, tmp_path)
    try:
        migrate(engine, BEFORE_USAGE)
        with engine.begin() as connection:
            first, second = old_release_user(connection), old_release_user(connection)
            _add_todos(connection, first, _inbox(connection, first), 7)
        migrate(engine, "head")
        with engine.begin() as connection:
            assert _usage(connection, first) == (7, 1)
            assert _usage(connection, second) == (0, 1)
            # A new account counts its default list; inserts and deletes count, a cascade too.
            third = old_release_user(connection)
            assert _usage(connection, third) == (0, 1)
            other = uuid.uuid4()
            _sql(
                connection,
                "INSERT INTO lists (id, owner_id, name, position, is_default, created_at,"
                " updated_at, version) VALUES (:id, :o, 'w', '0000000099', false,"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1)",
                id=other, o=first,
            )  # fmt: skip
            _add_todos(connection, first, other, 5)
            assert _usage(connection, first) == (12, 2)
            inbox = _inbox(connection, first)
            sql = "DELETE FROM todos WHERE id IN (SELECT id FROM todos WHERE list_id = :l LIMIT 2)"
            _sql(connection, sql, l=inbox)
            assert _usage(connection, first) == (10, 2)
            _sql(connection, "DELETE FROM lists WHERE id = :l", l=other)
            assert _usage(connection, first) == (5, 1)
            _sql(connection, "DELETE FROM users WHERE id = :u", u=first)
            assert _usage(connection, first) is None
        migrate(engine, BEFORE_USAGE, down=True)
        migrate(engine, "head")
        with engine.begin() as connection:
            assert _usage(connection, second) == (0, 1)
            assert _usage(connection, third) == (0, 1)
    finally:
        engine.dispose()
