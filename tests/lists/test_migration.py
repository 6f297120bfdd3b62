"""The lists migration: existing users get their Inbox with their todos in it, in the order
they were created; down and up again; and the release before keeps working on the new schema
(expand/contract): its sign-ups get a default list, its todos land at the end of it."""

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from tests.support.old_release import (
    T0,
    migrate,
    migration_engine,
    old_release_todo,
    old_release_user,
)

BEFORE_LISTS = "9d2f4c1a7b3e"


def _rows(connection: Connection, sql: str, **params: Any) -> list[Any]:
    return list(connection.execute(sa.text(sql), params).all())


def _lists(connection: Connection, owner: uuid.UUID) -> list[Any]:
    lists = sa.table(
        "lists", sa.column("id", sa.Uuid), sa.column("owner_id", sa.Uuid),
        sa.column("name", sa.String), sa.column("is_default", sa.Boolean),
    )  # fmt: skip
    stmt = sa.select(lists.c.id, lists.c.name, lists.c.is_default).where(lists.c.owner_id == owner)
    return list(connection.execute(stmt).all())


def _placed(connection: Connection, owner: uuid.UUID) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    todos = sa.table(
        "todos", sa.column("id", sa.Uuid), sa.column("owner_id", sa.Uuid),
        sa.column("list_id", sa.Uuid), sa.column("position", sa.String),
    )  # fmt: skip
    stmt = (
        sa.select(todos.c.id, todos.c.list_id, todos.c.position)
        .where(todos.c.owner_id == owner)
        .order_by(todos.c.position)
    )
    return [tuple(row) for row in connection.execute(stmt).all()]  # type: ignore[misc]


def _changed(connection: Connection) -> set[uuid.UUID]:
    changes = sa.table("changes", sa.column("object_id", sa.Uuid))
    return set(connection.execute(sa.select(changes.c.object_id)).scalars())


def test_existing_users_get_an_inbox_with_their_todos_in_created_order(
    empty_database_url: str, tmp_path: Path
) -> None:
    engine = migration_engine(empty_database_url, tmp_path)
    try:
        migrate(engine, BEFORE_LISTS)
        with engine.begin() as connection:
            users = [old_release_user(connection) for _ in range(2)]
            # Inserted out of creation order: the migration orders by created_at.
            created = {
                old_release_todo(connection, users[0], T0 + timedelta(minutes=m)): m
                for m in (3, 1, 2)
            }
            old_release_todo(connection, users[1], T0)
        migrate(engine, "head")
        with engine.connect() as connection:
            for user in users:
                (inbox,) = _lists(connection, user)
                assert inbox.name == "Inbox"
                assert inbox.is_default
            placed = _placed(connection, users[0])
            inbox_id = _lists(connection, users[0])[0].id
            assert [created[todo_id] for todo_id, _, _ in placed] == [1, 2, 3]
            assert {list_id for _, list_id, _ in placed} == {inbox_id}
            assert len({position for _, _, position in placed}) == 3
            # The feed starts from every existing list and todo.
            assert {todo_id for todo_id, _, _ in placed} | {inbox_id} <= _changed(connection)
        migrate(engine, BEFORE_LISTS, down=True)
        with engine.connect() as connection:
            assert len(_rows(connection, "SELECT id FROM todos")) == 4
        migrate(engine, "head")
        with engine.connect() as connection:
            assert len(_lists(connection, users[0])) == 1
    finally:
        engine.dispose()


def test_the_release_before_keeps_working_on_the_new_schema(
    empty_database_url: str, tmp_path: Path
) -> None:
    engine = migration_engine(empty_database_url, tmp_path)
    try:
        migrate(engine, "head")
        with engine.begin() as connection:
            user = old_release_user(connection)
        with engine.begin() as connection:
            todos = [old_release_todo(connection, user, T0) for _ in range(3)]
        with engine.connect() as connection:
            (inbox,) = _lists(connection, user)
            assert inbox.is_default
            placed = _placed(connection, user)
            assert [todo_id for todo_id, _, _ in placed] == todos  # each at the end
            assert {list_id for _, list_id, _ in placed} == {inbox.id}
            assert {*todos, inbox.id} <= _changed(connection)
    finally:
        engine.dispose()
