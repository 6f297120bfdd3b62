"""The recording triggers only record (b24e6a0f3c71, issue 24): the feed writes its JSON in
Python. Before that, from cd0b552f17fe, they wrote each change's JSON (changes.document): the
rows there before that migration got theirs, and the release before it, which knows nothing
of the column (nor of lists), got every one of its writes written. Downgrading from the
recording-only triggers puts the document-writing ones back, every row's document written
again, so that release works at once."""

import json
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

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
# The last revision whose triggers write documents.
WITH_DOCUMENTS = "7a4e2b9c5d13"


def _written(engine: Engine) -> dict[uuid.UUID, str | None]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(Change.object_id, Change.document)).all()
    return dict(rows)


# The fields of the documents those releases' triggers wrote: their TodoRead and ListRead.
# Fields added since (issue 27's version, due_day, time_zone, remind_at) were never in one.
_DOCUMENT_FIELDS = {
    "todo": (
        "id",
        "title",
        "description",
        "completed",
        "priority",
        "due_date",
        "completed_at",
        "created_at",
        "updated_at",
        "list_id",
        "position",
    ),
    "list": ("id", "name", "position", "is_default", "created_at", "updated_at"),
}


def _as_pydantic_writes_it(engine: Engine, object_id: uuid.UUID) -> str:
    """The change as GET's schemas write the object (the feed's own model around it), with
    the fields those releases had, read from the columns they had."""
    todos, lists = sa.inspect(Todo).local_table, sa.inspect(TodoList).local_table
    with engine.connect() as connection:
        for kind, table, schema in (("todo", todos, TodoRead), ("list", lists, ListRead)):
            names = (*_DOCUMENT_FIELDS[kind], "version")
            columns = [table.c[name] for name in names]
            row = connection.execute(sa.select(*columns).where(table.c.id == object_id)).first()
            if row is None:
                continue
            defaults = dict.fromkeys(schema.model_fields)
            item: Any = schema.model_validate({**defaults, **row._mapping})
            change = ChangeRead(type=kind, id=object_id, deleted=False, item=item)  # type: ignore[arg-type]
            body = change.model_dump(mode="json")
            body["item"] = {name: body["item"][name] for name in _DOCUMENT_FIELDS[kind]}
            return json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    raise AssertionError(f"no todo or list {object_id}")


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
        migrate(engine, WITH_DOCUMENTS)
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
        migrate(engine, WITH_DOCUMENTS)
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
        migrate(engine, WITH_DOCUMENTS)
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


def test_at_head_the_triggers_record_without_writing_json(
    empty_database_url: str, tmp_path: Path
) -> None:
    """A change is still recorded (owner, deletion, stamp), by the release before too, but no
    document is written: a field added to todos touches no trigger."""
    engine = migration_engine(empty_database_url, tmp_path)
    try:
        migrate(engine, "head")
        with engine.begin() as connection:
            user = old_release_user(connection)
            todos = [old_release_todo(connection, user, T0) for _ in range(2)]
            connection.execute(sa.delete(Todo).where(Todo.id == todos[1]))
        with engine.connect() as connection:
            rows = connection.execute(sa.select(Change.object_id, Change.deleted, Change.document))
            recorded = {row.object_id: (row.deleted, row.document) for row in rows}
        assert recorded[todos[0]] == (False, None)
        assert recorded[todos[1]] == (True, None)
    finally:
        engine.dispose()


def test_the_upgrade_leaves_no_document_to_go_stale(
    empty_database_url: str, tmp_path: Path
) -> None:
    """The release before reads changes.document: after the upgrade none is left for it to
    serve once its object has changed (it answers an unwritten one with a 500, not a lie)."""
    engine = migration_engine(empty_database_url, tmp_path)
    try:
        migrate(engine, WITH_DOCUMENTS)
        with engine.begin() as connection:
            user = old_release_user(connection)
            old_release_todo(connection, user, T0)
        assert all(document is not None for document in _written(engine).values())
        migrate(engine, "head")
        with engine.begin() as connection:  # the object changes, as the release before sees it
            connection.execute(sa.update(Todo).values(title="changed"))
        assert set(_written(engine).values()) == {None}
    finally:
        engine.dispose()


def test_a_downgrade_puts_the_document_triggers_back_with_every_document(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Changes recorded at head have no document; after the downgrade the release before reads
    every one as pydantic writes it, and its later writes get theirs from the triggers."""
    engine = migration_engine(empty_database_url, tmp_path)
    try:
        migrate(engine, "head")
        with engine.begin() as connection:
            user = old_release_user(connection)
            kept = old_release_todo(connection, user, T0)
            gone = old_release_todo(connection, user, T0)
            connection.execute(sa.text("UPDATE todos SET title = 'a \"b\"\n'"))
            connection.execute(sa.delete(Todo).where(Todo.id == gone))
        migrate(engine, WITH_DOCUMENTS, down=True)
        written = _written(engine)
        assert len(written) == 3  # the Inbox, and the two todos
        for object_id in written.keys() - {gone}:
            assert written[object_id] == _as_pydantic_writes_it(engine, object_id)
        assert written[gone] == _tombstone("todo", gone)
        with engine.begin() as connection:
            later = old_release_todo(connection, user, T0)
            connection.execute(sa.update(Todo).where(Todo.id == kept).values(title="é"))
        written = _written(engine)
        assert written[later] == _as_pydantic_writes_it(engine, later)
        assert written[kept] == _as_pydantic_writes_it(engine, kept)
        migrate(engine, "head")
    finally:
        engine.dispose()
