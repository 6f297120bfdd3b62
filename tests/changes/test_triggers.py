"""The recording triggers write each change's JSON (changes.document) as
app.changes.documents defines it: the SQL in force is that module's, the rows there before the
migration get theirs, and the release before this one, which knows nothing of the column (nor
of lists), still gets every one of its writes written."""

import json
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from app.changes.documents import document, tombstone
from app.changes.models import Change
from app.changes.schemas import ChangeRead
from app.lists.models import TodoList
from app.lists.schemas import ListRead
from app.todos.models import Todo
from app.todos.schemas import TodoRead
from tests.support.old_release import (
    T0,
    migrate,
    migration_engine,
    old_release_todo,
    old_release_user,
)

BEFORE_DOCUMENTS = "5d2c8e7f1a90"


def _definitions(connection: Connection) -> dict[str, str]:
    if connection.dialect.name == "postgresql":
        query = "SELECT proname, prosrc FROM pg_proc WHERE proname = 'record_change'"
    else:
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
    return dict(connection.execute(sa.text(query)).all())


def test_the_triggers_write_what_app_changes_documents_writes(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Fails when a field is added to the documents without a migration that writes the
    triggers again (`python -m app.changes.documents` prints their SQL)."""
    engine = migration_engine(empty_database_url, tmp_path)
    try:
        migrate(engine, "head")
        with engine.connect() as connection:
            found = _definitions(connection)
    finally:
        engine.dispose()
    if engine.dialect.name == "postgresql":
        expected = {
            "record_change": [
                document("postgresql", "list", "new"),
                document("postgresql", "todo", "new"),
                tombstone("postgresql", "TG_ARGV[0]", "object"),
            ]
        }
    else:
        expected = {}
        for table, kind in (("lists", "list"), ("todos", "todo")):
            live = [document("sqlite", kind, table)]  # type: ignore[arg-type]
            expected[f"{table}_record_insert"] = expected[f"{table}_record_update"] = live
            expected[f"{table}_record_delete"] = [tombstone("sqlite", f"'{kind}'", "OLD.id")]
    for name, parts in expected.items():
        for part in parts:
            assert part in found[name], f"{name} does not write what app.changes.documents does"


def _written(engine: Engine) -> dict[uuid.UUID, str | None]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(Change.object_id, Change.document)).all()
    return dict(rows)


def _as_pydantic_writes_it(engine: Engine, object_id: uuid.UUID) -> str:
    """The change as GET's schemas write the object (the feed's own model around it)."""
    with Session(engine) as session:
        todo = session.get(Todo, object_id)
        if todo is not None:
            item: Any = TodoRead.model_validate(todo)
            return ChangeRead(type="todo", id=object_id, deleted=False, item=item).model_dump_json()
        todo_list = session.get(TodoList, object_id)
        assert todo_list is not None
        item = ListRead.model_validate(todo_list)
        return ChangeRead(type="list", id=object_id, deleted=False, item=item).model_dump_json()


def _tombstone(kind: str, object_id: uuid.UUID) -> str:
    return json.dumps(
        {"type": kind, "id": str(object_id), "deleted": True, "item": None}, separators=(",", ":")
    )


def test_the_rows_there_before_get_their_documents(empty_database_url: str, tmp_path: Path) -> None:
    engine = migration_engine(empty_database_url, tmp_path)
    try:
        migrate(engine, BEFORE_DOCUMENTS)
        with engine.begin() as connection:
            user = old_release_user(connection)
            kept = [old_release_todo(connection, user, T0) for _ in range(2)]
            gone = old_release_todo(connection, user, T0)
            connection.execute(sa.text("UPDATE todos SET title = 'a \"b\"\n'"))
            connection.execute(sa.delete(Todo).where(Todo.id == gone))
        migrate(engine, "head")
        written = _written(engine)
        (inbox,) = [i for i in written if i not in {*kept, gone}]
        assert len(written) == 4
        for object_id in (*kept, inbox):
            assert written[object_id] == _as_pydantic_writes_it(engine, object_id)
        assert written[gone] == _tombstone("todo", gone)
        # And back: the column goes, the triggers write what they wrote before, and the
        # upgrade again gives that change its document.
        migrate(engine, BEFORE_DOCUMENTS, down=True)
        with engine.connect() as connection:
            columns = {column["name"] for column in sa.inspect(connection).get_columns("changes")}
        assert "document" not in columns
        with engine.begin() as connection:
            later = old_release_todo(connection, user, T0)
        with engine.connect() as connection:
            recorded = connection.scalars(sa.select(Change.object_id)).all()
        assert later in recorded  # the downgraded triggers still record
        migrate(engine, "head")
        written = _written(engine)
        assert len(written) == 5
        assert written[later] == _as_pydantic_writes_it(engine, later)
    finally:
        engine.dispose()


def test_the_release_before_gets_its_writes_written(
    empty_database_url: str, tmp_path: Path
) -> None:
    """It inserts todos without list_id and position (a trigger fills them in after the
    insert, on SQLite) and never names the document: the triggers write it all the same."""
    engine = migration_engine(empty_database_url, tmp_path)
    try:
        migrate(engine, "head")
        with engine.begin() as connection:
            user = old_release_user(connection)
        with engine.begin() as connection:
            todos = [old_release_todo(connection, user, T0) for _ in range(3)]
        with engine.begin() as connection:
            connection.execute(sa.update(Todo).where(Todo.id == todos[0]).values(title="é"))
            connection.execute(sa.delete(Todo).where(Todo.id == todos[2]))
        written = _written(engine)
        assert len(written) == 4  # the Inbox and the three todos
        for object_id in written.keys() - {todos[2]}:
            assert written[object_id] == _as_pydantic_writes_it(engine, object_id)
        assert written[todos[2]] == _tombstone("todo", todos[2])
    finally:
        engine.dispose()
