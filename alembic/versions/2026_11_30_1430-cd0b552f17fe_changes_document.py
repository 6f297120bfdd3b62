"""changes.document: each change's JSON, written by the triggers that record it

Revision ID: cd0b552f17fe
Revises: 5d2c8e7f1a90
Create Date: 2026-11-30 14:30:00

Expand only: a nullable column, and the recording triggers replaced by ones that also write
the change as the feed returns it (app.changes.documents), in the same statement as its
stamp. The release before this one keeps working: it never writes `changes` itself, and its
feed still joins the lists and todos. Every row there is gets its document here.

The document SQL below is app.changes.documents' (`python -m app.changes.documents`), copied
because a migration must not change once released; tests/changes/test_triggers.py fails when
the triggers in force write anything else. A NULL document is one the database could not
write (a todo without a position, say): the feed answers 500 for it rather than a tombstone.
"""

# ruff: noqa: S608, E501 - the SQL is this file's own constants; generated lines may run long

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "cd0b552f17fe"
down_revision: str | None = "5d2c8e7f1a90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f000', 'now')"  # as UTCDateTime stores it

_PG_LIST = """((((((((((((('{"type":"list","id":' || (('"' || CAST("new".id AS VARCHAR)) || '"')) ||
',"deleted":false,"item":{"id":') || (('"' || CAST("new".id AS VARCHAR)) || '"')) || ',"name":')
|| CAST(to_json("new".name) AS VARCHAR)) || ',"position":') || CAST(to_json("new".position) AS
VARCHAR)) || ',"is_default":') || CASE WHEN "new".is_default THEN 'true' WHEN NOT
"new".is_default THEN 'false' END) || ',"created_at":') || (('"' ||
replace(coalesce(to_char(timezone('UTC', "new".created_at), 'YYYY-MM-DD"T"HH24:MI:SS.US'), CASE
WHEN ("new".created_at < 'epoch') THEN '0001-01-01T00:00:00.000000' WHEN ("new".created_at >
'epoch') THEN '9999-12-31T23:59:59.999999' END), '.000000', '')) || 'Z"')) || ',"updated_at":')
|| (('"' || replace(coalesce(to_char(timezone('UTC', "new".updated_at),
'YYYY-MM-DD"T"HH24:MI:SS.US'), CASE WHEN ("new".updated_at < 'epoch') THEN
'0001-01-01T00:00:00.000000' WHEN ("new".updated_at > 'epoch') THEN '9999-12-31T23:59:59.999999'
END), '.000000', '')) || 'Z"')) || '}}'"""
_PG_TODO = """((((((((((((((((((((((('{"type":"todo","id":' || (('"' || CAST("new".id AS VARCHAR)) || '"')) ||
',"deleted":false,"item":{"id":') || (('"' || CAST("new".id AS VARCHAR)) || '"')) ||
',"title":') || CAST(to_json("new".title) AS VARCHAR)) || ',"description":') ||
coalesce(CAST(to_json("new".description) AS VARCHAR), 'null')) || ',"completed":') || CASE WHEN
"new".completed THEN 'true' WHEN NOT "new".completed THEN 'false' END) || ',"priority":') ||
CASE WHEN ("new".priority = 0) THEN '"low"' WHEN ("new".priority = 1) THEN '"normal"' WHEN
("new".priority = 2) THEN '"high"' END) || ',"due_date":') || CASE WHEN ("new".due_date IS NULL)
THEN 'null' ELSE ('"' || replace(coalesce(to_char(timezone('UTC', "new".due_date),
'YYYY-MM-DD"T"HH24:MI:SS.US'), CASE WHEN ("new".due_date < 'epoch') THEN
'0001-01-01T00:00:00.000000' WHEN ("new".due_date > 'epoch') THEN '9999-12-31T23:59:59.999999'
END), '.000000', '')) || 'Z"' END) || ',"completed_at":') || CASE WHEN ("new".completed_at IS
NULL) THEN 'null' ELSE ('"' || replace(coalesce(to_char(timezone('UTC', "new".completed_at),
'YYYY-MM-DD"T"HH24:MI:SS.US'), CASE WHEN ("new".completed_at < 'epoch') THEN
'0001-01-01T00:00:00.000000' WHEN ("new".completed_at > 'epoch') THEN
'9999-12-31T23:59:59.999999' END), '.000000', '')) || 'Z"' END) || ',"created_at":') || (('"' ||
replace(coalesce(to_char(timezone('UTC', "new".created_at), 'YYYY-MM-DD"T"HH24:MI:SS.US'), CASE
WHEN ("new".created_at < 'epoch') THEN '0001-01-01T00:00:00.000000' WHEN ("new".created_at >
'epoch') THEN '9999-12-31T23:59:59.999999' END), '.000000', '')) || 'Z"')) || ',"updated_at":')
|| (('"' || replace(coalesce(to_char(timezone('UTC', "new".updated_at),
'YYYY-MM-DD"T"HH24:MI:SS.US'), CASE WHEN ("new".updated_at < 'epoch') THEN
'0001-01-01T00:00:00.000000' WHEN ("new".updated_at > 'epoch') THEN '9999-12-31T23:59:59.999999'
END), '.000000', '')) || 'Z"')) || ',"list_id":') || (('"' || CAST("new".list_id AS VARCHAR)) ||
'"')) || ',"position":') || CAST(to_json("new".position) AS VARCHAR)) || '}}'"""
_PG_TOMBSTONE = """((('{"type":"' || TG_ARGV[0]) || '","id":') || (('"' || CAST(object AS VARCHAR)) || '"')) ||
',"deleted":true,"item":null}'"""
_PG_OLD_TOMBSTONE = """((('{"type":"' || changes.kind) || '","id":') || (('"' || CAST(changes.object_id AS VARCHAR)) ||
'"')) || ',"deleted":true,"item":null}'"""
_SQLITE_LIST = """((((((((((((('{"type":"list","id":' || (((((((((('"' || substr(lower(CAST(lists.id AS VARCHAR)),
1, 8)) || '-') || substr(lower(CAST(lists.id AS VARCHAR)), 9, 4)) || '-') ||
substr(lower(CAST(lists.id AS VARCHAR)), 13, 4)) || '-') || substr(lower(CAST(lists.id AS
VARCHAR)), 17, 4)) || '-') || substr(lower(CAST(lists.id AS VARCHAR)), 21, 12)) || '"')) ||
',"deleted":false,"item":{"id":') || (((((((((('"' || substr(lower(CAST(lists.id AS VARCHAR)),
1, 8)) || '-') || substr(lower(CAST(lists.id AS VARCHAR)), 9, 4)) || '-') ||
substr(lower(CAST(lists.id AS VARCHAR)), 13, 4)) || '-') || substr(lower(CAST(lists.id AS
VARCHAR)), 17, 4)) || '-') || substr(lower(CAST(lists.id AS VARCHAR)), 21, 12)) || '"')) ||
',"name":') || nullif(json_quote(lists.name), 'null')) || ',"position":') ||
nullif(json_quote(lists.position), 'null')) || ',"is_default":') || CASE WHEN lists.is_default
THEN 'true' WHEN lists.is_default = 0 THEN 'false' END) || ',"created_at":') || (('"' ||
replace(replace(lists.created_at, ' ', 'T'), '.000000', '')) || 'Z"')) || ',"updated_at":') ||
(('"' || replace(replace(lists.updated_at, ' ', 'T'), '.000000', '')) || 'Z"')) || '}}'"""
_SQLITE_TODO = """((((((((((((((((((((((('{"type":"todo","id":' || (((((((((('"' || substr(lower(CAST(todos.id AS
VARCHAR)), 1, 8)) || '-') || substr(lower(CAST(todos.id AS VARCHAR)), 9, 4)) || '-') ||
substr(lower(CAST(todos.id AS VARCHAR)), 13, 4)) || '-') || substr(lower(CAST(todos.id AS
VARCHAR)), 17, 4)) || '-') || substr(lower(CAST(todos.id AS VARCHAR)), 21, 12)) || '"')) ||
',"deleted":false,"item":{"id":') || (((((((((('"' || substr(lower(CAST(todos.id AS VARCHAR)),
1, 8)) || '-') || substr(lower(CAST(todos.id AS VARCHAR)), 9, 4)) || '-') ||
substr(lower(CAST(todos.id AS VARCHAR)), 13, 4)) || '-') || substr(lower(CAST(todos.id AS
VARCHAR)), 17, 4)) || '-') || substr(lower(CAST(todos.id AS VARCHAR)), 21, 12)) || '"')) ||
',"title":') || nullif(json_quote(todos.title), 'null')) || ',"description":') ||
json_quote(todos.description)) || ',"completed":') || CASE WHEN todos.completed THEN 'true' WHEN
todos.completed = 0 THEN 'false' END) || ',"priority":') || CASE WHEN (todos.priority = 0) THEN
'"low"' WHEN (todos.priority = 1) THEN '"normal"' WHEN (todos.priority = 2) THEN '"high"' END)
|| ',"due_date":') || CASE WHEN (todos.due_date IS NULL) THEN 'null' ELSE ('"' ||
replace(replace(todos.due_date, ' ', 'T'), '.000000', '')) || 'Z"' END) || ',"completed_at":')
|| CASE WHEN (todos.completed_at IS NULL) THEN 'null' ELSE ('"' ||
replace(replace(todos.completed_at, ' ', 'T'), '.000000', '')) || 'Z"' END) || ',"created_at":')
|| (('"' || replace(replace(todos.created_at, ' ', 'T'), '.000000', '')) || 'Z"')) ||
',"updated_at":') || (('"' || replace(replace(todos.updated_at, ' ', 'T'), '.000000', '')) ||
'Z"')) || ',"list_id":') || (((((((((('"' || substr(lower(CAST(todos.list_id AS VARCHAR)), 1,
8)) || '-') || substr(lower(CAST(todos.list_id AS VARCHAR)), 9, 4)) || '-') ||
substr(lower(CAST(todos.list_id AS VARCHAR)), 13, 4)) || '-') || substr(lower(CAST(todos.list_id
AS VARCHAR)), 17, 4)) || '-') || substr(lower(CAST(todos.list_id AS VARCHAR)), 21, 12)) || '"'))
|| ',"position":') || nullif(json_quote(todos.position), 'null')) || '}}'"""
_SQLITE_LIST_TOMBSTONE = """((('{"type":"' || 'list') || '","id":') || (((((((((('"' || substr(lower(CAST(OLD.id AS
VARCHAR)), 1, 8)) || '-') || substr(lower(CAST(OLD.id AS VARCHAR)), 9, 4)) || '-') ||
substr(lower(CAST(OLD.id AS VARCHAR)), 13, 4)) || '-') || substr(lower(CAST(OLD.id AS VARCHAR)),
17, 4)) || '-') || substr(lower(CAST(OLD.id AS VARCHAR)), 21, 12)) || '"')) ||
',"deleted":true,"item":null}'"""
_SQLITE_TODO_TOMBSTONE = """((('{"type":"' || 'todo') || '","id":') || (((((((((('"' || substr(lower(CAST(OLD.id AS
VARCHAR)), 1, 8)) || '-') || substr(lower(CAST(OLD.id AS VARCHAR)), 9, 4)) || '-') ||
substr(lower(CAST(OLD.id AS VARCHAR)), 13, 4)) || '-') || substr(lower(CAST(OLD.id AS VARCHAR)),
17, 4)) || '-') || substr(lower(CAST(OLD.id AS VARCHAR)), 21, 12)) || '"')) ||
',"deleted":true,"item":null}'"""
_SQLITE_OLD_TOMBSTONE = """((('{"type":"' || changes.kind) || '","id":') || (((((((((('"' ||
substr(lower(CAST(changes.object_id AS VARCHAR)), 1, 8)) || '-') ||
substr(lower(CAST(changes.object_id AS VARCHAR)), 9, 4)) || '-') ||
substr(lower(CAST(changes.object_id AS VARCHAR)), 13, 4)) || '-') ||
substr(lower(CAST(changes.object_id AS VARCHAR)), 17, 4)) || '-') ||
substr(lower(CAST(changes.object_id AS VARCHAR)), 21, 12)) || '"')) ||
',"deleted":true,"item":null}'"""


def _pg_record_change(with_document: bool) -> str:
    """record_change as the lists migration wrote it, or with the document."""
    declare, column, value, update = "", "", "", ""
    tombstone = live = ""
    if with_document:
        declare, column, value = "\n    written text;", ", document", ", written"
        update = ",\n        document = EXCLUDED.document"
        tombstone = f"\n        written := {_PG_TOMBSTONE};"
        live = f"""
        IF TG_ARGV[0] = 'list' THEN
            written := {_PG_LIST};
        ELSE
            written := {_PG_TODO};
        END IF;"""
    return f"""CREATE OR REPLACE FUNCTION record_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    object uuid;
    owner uuid;{declare}
BEGIN
    IF TG_OP = 'DELETE' THEN
        object := OLD.id;
        owner := OLD.owner_id;
        -- The account itself is going: its changes go with it (users_forget_changes).
        IF NOT EXISTS (SELECT 1 FROM users WHERE id = owner) THEN
            RETURN NULL;
        END IF;{tombstone}
    ELSE
        object := NEW.id;
        owner := NEW.owner_id;{live}
    END IF;
    INSERT INTO changes (object_id, kind, owner_id, deleted, txid, changed_at{column})
    VALUES (object, TG_ARGV[0], owner, TG_OP = 'DELETE',
            CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT), now(){value})
    ON CONFLICT (object_id) DO UPDATE SET owner_id = EXCLUDED.owner_id,
        deleted = EXCLUDED.deleted, txid = EXCLUDED.txid, changed_at = EXCLUDED.changed_at{update};
    RETURN NULL;
END $$"""


_SQLITE_DOCUMENTS = {
    # From the row in the table, not NEW: todos_fill_list (the release before's inserts)
    # updates the row after the insert, and SQLite does not promise which of the two AFTER
    # INSERT triggers runs last; whichever does, it writes the row as it now is.
    ("lists", "INSERT"): f"(SELECT {_SQLITE_LIST} FROM lists WHERE lists.id = NEW.id)",
    ("todos", "INSERT"): f"(SELECT {_SQLITE_TODO} FROM todos WHERE todos.id = NEW.id)",
    ("lists", "DELETE"): _SQLITE_LIST_TOMBSTONE,
    ("todos", "DELETE"): _SQLITE_TODO_TOMBSTONE,
}
_SQLITE_DOCUMENTS[("lists", "UPDATE")] = _SQLITE_DOCUMENTS[("lists", "INSERT")]
_SQLITE_DOCUMENTS[("todos", "UPDATE")] = _SQLITE_DOCUMENTS[("todos", "INSERT")]


def _sqlite_record(table: str, kind: str, event: str, with_document: bool) -> str:
    """{table}_record_{event} as the lists migration wrote it, or with the document."""
    row = "OLD" if event == "DELETE" else "NEW"
    guard = " WHEN EXISTS (SELECT 1 FROM users WHERE id = OLD.owner_id)" if row == "OLD" else ""
    column = value = update = ""
    if with_document:
        column, value = ", document", f",\n            {_SQLITE_DOCUMENTS[(table, event)]}"
        update = ",\n        document = excluded.document"
    return f"""CREATE TRIGGER {table}_record_{event.lower()} AFTER {event} ON {table}{guard}
BEGIN
    INSERT INTO change_clock (id, value) VALUES (1, 1)
        ON CONFLICT (id) DO UPDATE SET value = value + 1;
    INSERT INTO changes (object_id, kind, owner_id, deleted, txid, changed_at{column})
    VALUES ({row}.id, '{kind}', {row}.owner_id, {int(event == "DELETE")},
            (SELECT value FROM change_clock WHERE id = 1), {_SQLITE_NOW}{value})
    ON CONFLICT (object_id) DO UPDATE SET owner_id = excluded.owner_id,
        deleted = excluded.deleted, txid = excluded.txid, changed_at = excluded.changed_at{update};
END"""


def _execute(sql: str) -> None:
    # As text: the JSON's colons (,"deleted":false) would read as bind parameters unescaped.
    op.execute(sa.text(sql.replace(":", "\\:")))


def _replace_triggers(with_document: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        # The triggers call it by name: replacing the function replaces what they do.
        _execute(_pg_record_change(with_document))
        return
    # SQLite has no CREATE OR REPLACE TRIGGER; each statement here runs in the migration's
    # transaction, so no write sees the table without its trigger.
    for table, kind in (("lists", "list"), ("todos", "todo")):
        for event in ("INSERT", "UPDATE", "DELETE"):
            _execute(f"DROP TRIGGER {table}_record_{event.lower()}")
            _execute(_sqlite_record(table, kind, event, with_document))


def upgrade() -> None:
    # Not in batch mode: on SQLite that would copy the table (changes has no triggers, but
    # nothing is gained by copying it). SQLite adds a column in place.
    op.add_column("changes", sa.Column("document", sa.Text(), nullable=True))
    _replace_triggers(with_document=True)
    postgres = op.get_bind().dialect.name == "postgresql"
    # Every row there is, as the triggers would have written it. On PostgreSQL the documents
    # name the row `new`, as in the trigger: the subquery's table goes by that name.
    alias = ' AS "new"' if postgres else ""
    for table, kind, written in (
        ("lists", "list", _PG_LIST if postgres else _SQLITE_LIST),
        ("todos", "todo", _PG_TODO if postgres else _SQLITE_TODO),
    ):
        row = '"new"' if postgres else table
        _execute(
            f"UPDATE changes SET document = (SELECT {written} FROM {table}{alias}"
            f" WHERE {row}.id = changes.object_id) WHERE kind = '{kind}' AND NOT deleted"
        )
    tombstone = _PG_OLD_TOMBSTONE if postgres else _SQLITE_OLD_TOMBSTONE
    _execute(f"UPDATE changes SET document = {tombstone} WHERE deleted")


def downgrade() -> None:
    _replace_triggers(with_document=False)
    # SQLite 3.35+ drops a column in place (batch mode would copy the table).
    op.drop_column("changes", "document")
