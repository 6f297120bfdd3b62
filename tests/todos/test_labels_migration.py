"""The labels migration (c5d8e1f2a934), expand/contract: the release before keeps inserting,
updating and deleting todos on the new schema (its todos have no labels, and todo_labels stays
in step); down and up again with labelled todos in the database."""

import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, inspect

from app.todos import fields
from app.todos.schemas import TodoRead
from tests.support.old_release import (
    T0,
    TODOS,
    migrate,
    migration_engine,
    old_release_todo,
    old_release_user,
)

BEFORE_LABELS = "e5c1d7a93b42"
LABELS = sa.table(
    "todo_labels",
    sa.column("todo_id", sa.Uuid),
    sa.column("name_key", sa.String),
    sa.column("user_id", sa.Uuid),
    sa.column("name", sa.String),
)


def _read(connection: Connection, todo_id: uuid.UUID) -> TodoRead:
    """The todo as this release reads it (GET, the list and the feed share the columns)."""
    row = connection.execute(sa.select(*fields.READ_COLUMNS).where(fields.C.id == todo_id)).one()
    return TodoRead.model_validate(row)


def _index(connection: Connection) -> list[tuple[Any, ...]]:
    rows = connection.execute(sa.select(LABELS.c.todo_id, LABELS.c.name_key)).all()
    return sorted(tuple(row) for row in rows)


def test_the_release_before_keeps_writing_todos(empty_database_url: str, tmp_path: Path) -> None:
    engine = migration_engine(empty_database_url, tmp_path)
    try:
        migrate(engine, "head")
        with engine.begin() as connection:
            user = old_release_user(connection)
        with engine.begin() as connection:
            todo = old_release_todo(connection, user, T0)  # knows nothing of labels
        with engine.begin() as connection:
            assert _read(connection, todo).labels == []
            labelled = old_release_todo(connection, user, T0)
            # As this release labels a todo: the column and the index, together.
            connection.execute(
                sa.update(fields.TABLE).where(fields.C.id == labelled).values(labels=["Work"])
            )
            connection.execute(
                sa.insert(LABELS).values(
                    todo_id=labelled, name_key="work", user_id=user, name="Work"
                )
            )
        with engine.begin() as connection:
            # The release before updates a labelled todo: it never names labels, which stay.
            connection.execute(
                sa.update(TODOS)
                .where(TODOS.c.id == labelled)
                .values(title="renamed", version=TODOS.c.version + 1)
            )
            assert _read(connection, labelled).labels == ["Work"]
            assert _index(connection) == [(labelled, "work")]
            # Its deletes take the index rows along.
            connection.execute(sa.delete(TODOS).where(TODOS.c.id == labelled))
            assert _index(connection) == []
            assert _read(connection, todo).labels == []
    finally:
        engine.dispose()


def test_down_and_up_again_with_labelled_todos(empty_database_url: str, tmp_path: Path) -> None:
    engine = migration_engine(empty_database_url, tmp_path)
    try:
        migrate(engine, "head")
        with engine.begin() as connection:
            user = old_release_user(connection)
        with engine.begin() as connection:
            todo = old_release_todo(connection, user, T0)
        for _ in range(2):  # twice: the second upgrade meets the first's leftovers, if any
            with engine.begin() as connection:
                connection.execute(
                    sa.update(fields.TABLE).where(fields.C.id == todo).values(labels=["a"])
                )
                connection.execute(
                    sa.insert(LABELS).values(todo_id=todo, name_key="a", user_id=user, name="a")
                )
            migrate(engine, BEFORE_LABELS, down=True)
            tables = inspect(engine)
            assert "todo_labels" not in tables.get_table_names()
            assert "labels" not in {c["name"] for c in tables.get_columns("todos")}
            with engine.begin() as connection:  # the release before, after the downgrade
                old_release_todo(connection, user, T0)
                count = connection.execute(sa.select(sa.func.count()).select_from(TODOS))
                assert count.scalar() == 2
            migrate(engine, "head")
            with engine.begin() as connection:
                assert _read(connection, todo).labels == []  # what the downgrade dropped
                assert _index(connection) == []
                connection.execute(sa.delete(TODOS).where(TODOS.c.id != todo))
    finally:
        engine.dispose()
