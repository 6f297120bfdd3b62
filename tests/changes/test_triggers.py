"""The recording triggers only record (b24e6a0f3c71, issue 24): the feed writes its JSON in
Python. Before that, from cd0b552f17fe, they wrote each change's JSON (changes.document): the
rows there before that migration got theirs, and the release before it, which knows nothing
of the column (nor of lists), got every one of its writes written. Downgrading from the
recording-only triggers puts the document-writing ones back, every row's document written
again, so that release works at once."""

import json
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.changes.models import Change
from app.changes.schemas import ListChange, TodoChange
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


def _as_pydantic_writes_it(engine: Engine, object_id: uuid.UUID) -> str:
    """The change as GET's schemas write the object (the feed's own model around it)."""
    change: TodoChange | ListChange
    with Session(engine) as session:
        # The columns of the releases whose triggers wrote documents: no parent_id yet, and
        # no parent_id in what they wrote.
        then = [column for column in Todo.__table__.c if column.name != "parent_id"]
        todo = session.execute(sa.select(*then).where(Todo.id == object_id)).first()
        if todo is not None:
            item = TodoRead.model_validate({**todo._mapping, "parent_id": None})
            change = TodoChange(type="todo", id=object_id, deleted=False, item=item)
            return change.model_dump_json(exclude={"item": {"parent_id"}})
        else:
            todo_list = session.get(TodoList, object_id)
            assert todo_list is not None
            listed = ListRead.model_validate(todo_list)
            change = ListChange(type="list", id=object_id, deleted=False, item=listed)
    return change.model_dump_json()


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
