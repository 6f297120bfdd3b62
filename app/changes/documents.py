"""Each change as JSON text, written by the database's triggers into its `changes` row.

A feed page is up to 1000 lists and todos. Handing each row's dozen columns to Python, converting
them (timestamps, UUIDs, the priority's name) and serialising the result cost the feed more than
twice what a list page of 20 todos costs (bench: changes; profiled, most of it was per row and
per column work in SQLAlchemy and in the app). Writing the JSON in the feed's statement moved
that work into the database, where it still cost ~3.5 µs a row, and looking up each object
another ~1: more than the list page on the machine both share. So the triggers that record a
change (AFTER INSERT, UPDATE, DELETE on lists and todos) write the finished JSON of ChangeRead
into `changes.document`, once per write, and a feed page is those texts joined with commas.

The texts are what the ordinary routes write through pydantic (ListRead, TodoRead), on
PostgreSQL and SQLite alike: field names and order, ids as lowercase hyphenated UUIDs,
timestamps in UTC as `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` (the fraction only when it is not zero, as
pydantic writes it), priority by name, strings quoted by the database's own JSON function
(to_json, json_quote), which escapes exactly as pydantic does: the short escapes, \\u00XX for
other control characters, everything else as UTF-8. tests/changes/test_documents.py compares
them with GET of each object on every backend.

Everything is built with `||`, which both databases have; only the quoting of a value differs.

This module is the one definition of that SQL; the triggers are a migration's copy of it
(migrations must not change once released, so they cannot import it), and
tests/changes/test_triggers.py fails when the triggers in force write anything else. A field
added to ListRead or TodoRead therefore takes, besides its entry here, a migration that
replaces the triggers with this module's new SQL and writes every row's document again:
`python -m app.changes.documents` prints the SQL.
"""

import sys
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args

from sqlalchemy import (
    ColumnElement,
    SQLColumnExpression,
    String,
    Table,
    Uuid,
    case,
    cast,
    func,
    literal_column,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.functions import coalesce

from app.lists.models import TodoList
from app.lists.schemas import ListRead
from app.todos.models import Priority, Todo
from app.todos.schemas import TodoRead

Expr = SQLColumnExpression[Any]
Kind = Literal["list", "todo"]


def _sql(text: str) -> Expr:
    """A string constant written into the SQL (a trigger's text has no parameters)."""
    return literal_column("'" + text.replace("'", "''") + "'", String())


def _concat(first: Expr, second: Expr, *more: Expr) -> ColumnElement[Any]:
    result = first.op("||")(second)
    for part in more:
        result = result.op("||")(part)
    return result


class _JsonText:
    """How one database writes a value as JSON text. A nullable field's NULL is the text null;
    any other NULL, or a value the contract has no text for, stays NULL (and so makes the
    whole document NULL: see change_document)."""

    def __init__(self, name: str) -> None:
        self.postgresql = name == "postgresql"

    def string(self, value: Expr, nullable: bool) -> Expr:
        if self.postgresql:
            text = cast(func.to_json(value), String())
            return coalesce(text, _sql("null")) if nullable else text
        quoted = func.json_quote(value)  # SQLite writes NULL as the text null
        return quoted if nullable else func.nullif(quoted, _sql("null"))

    def uuid(self, value: Expr) -> ColumnElement[Any]:
        if self.postgresql:
            return _concat(_sql('"'), cast(value, String()), _sql('"'))
        # SQLite keeps a UUID as 32 hex digits (SQLAlchemy's Uuid; the migration's triggers too).
        hexa = func.lower(cast(value, String()))
        groups = [
            func.substr(hexa, literal_column(str(start)), literal_column(str(length)))
            for start, length in _UUID_GROUPS
        ]
        parts: list[Expr] = [_sql('"'), groups[0]]
        for group in groups[1:]:
            parts += [_sql("-"), group]
        return _concat(*parts, _sql('"'))

    def timestamp(self, value: Expr, nullable: bool) -> Expr:
        if self.postgresql:
            # In UTC whatever the session's time zone; the fraction always has 6 digits here.
            utc = func.timezone(_sql("UTC"), value)
            text = func.to_char(utc, _sql('YYYY-MM-DD"T"HH24:MI:SS.US'))
            # asyncpg stores the first and the last instant a datetime holds as -infinity and
            # infinity (and reads them back as those datetimes), which to_char writes as NULL.
            ends = case(
                (value < literal_column("'epoch'"), _sql("0001-01-01T00:00:00.000000")),
                (value > literal_column("'epoch'"), _sql("9999-12-31T23:59:59.999999")),
            )
            text = coalesce(text, ends)
        else:
            # UTCDateTime keeps naive UTC as 'YYYY-MM-DD HH:MM:SS.ffffff' (the migration's SQL
            # defaults write the same form).
            text = func.replace(value, _sql(" "), _sql("T"))
        # Pydantic writes no fraction when it is zero.
        quoted = _concat(_sql('"'), func.replace(text, _sql(".000000"), _sql("")), _sql('Z"'))
        return case((value.is_(None), _sql("null")), else_=quoted) if nullable else quoted

    @staticmethod
    def boolean(value: Expr) -> Expr:
        # SQLite keeps 0/1: the truth tests read both.
        return case((value, _sql("true")), (~value, _sql("false")))

    @staticmethod
    def priority(value: Expr) -> Expr:
        return case(
            *(
                (value == literal_column(str(rank.value)), _sql(f'"{rank.name}"'))
                for rank in Priority
            )
        )


_UUID_GROUPS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))

# How each field of ListRead and TodoRead but the id is written, by name: a field's name is
# its column's. Checked against the schemas below, so a field added to either fails at import
# until it is written here too (and the triggers are written again: see the module's doc).
_WriteField = Callable[[_JsonText, Expr], Expr]
_LIST_FIELDS: Mapping[str, _WriteField] = {
    "name": lambda d, v: d.string(v, nullable=False),
    "position": lambda d, v: d.string(v, nullable=False),
    "is_default": lambda d, v: d.boolean(v),
    "created_at": lambda d, v: d.timestamp(v, nullable=False),
    "updated_at": lambda d, v: d.timestamp(v, nullable=False),
}
_TODO_FIELDS: Mapping[str, _WriteField] = {
    "title": lambda d, v: d.string(v, nullable=False),
    "description": lambda d, v: d.string(v, nullable=True),
    "completed": lambda d, v: d.boolean(v),
    "priority": lambda d, v: d.priority(v),
    "due_date": lambda d, v: d.timestamp(v, nullable=True),
    "completed_at": lambda d, v: d.timestamp(v, nullable=True),
    "created_at": lambda d, v: d.timestamp(v, nullable=False),
    "updated_at": lambda d, v: d.timestamp(v, nullable=False),
    # Nullable in the table only while the release before this one may still insert (a
    # trigger fills it in at once); the contract's todo always has one.
    "list_id": _JsonText.uuid,
    "position": lambda d, v: d.string(v, nullable=False),
}


def _table_of(model: type[Any]) -> Table:
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


_KINDS: Mapping[Kind, tuple[Table, Mapping[str, _WriteField]]] = {
    "list": (_table_of(TodoList), _LIST_FIELDS),
    "todo": (_table_of(Todo), _TODO_FIELDS),
}
for _model, (_table, _fields) in ((ListRead, _KINDS["list"]), (TodoRead, _KINDS["todo"])):
    if list(_model.model_fields) != ["id", *_fields] or not set(_fields) <= set(_table.c.keys()):
        raise RuntimeError(f"app.changes.documents does not write {_model.__name__} as it is")


def document(dialect: str, kind: Kind, row: str) -> str:
    """SQL: ChangeRead's JSON text for the list or todo in `row`, the table itself (its name)
    or a trigger's record (new). NULL only if a value could not be written (then the feed
    answers 500 rather than pass the change for a deletion: service.UnwrittenChange)."""
    table, fields = _KINDS[kind]
    source = table if row == table.name else table.alias(row)
    writer = _JsonText(dialect)
    object_id = writer.uuid(source.c.id)
    parts: list[Expr] = [_sql(f'{{"type":"{kind}","id":'), object_id]
    parts += [_sql(',"deleted":false,"item":{"id":'), object_id]
    for name, write in fields.items():
        parts += [_sql(f',"{name}":'), write(writer, source.c[name])]
    return _as_sql(_concat(*parts, _sql("}}")), dialect)


def tombstone(dialect: str, kind: str, object_id: str) -> str:
    """SQL: ChangeRead's JSON text for a deleted object; kind and object_id are SQL (a column,
    a variable, a constant)."""
    quoted = _JsonText(dialect).uuid(literal_column(object_id, Uuid()))
    head = _concat(_sql('{"type":"'), literal_column(kind, String()), _sql('","id":'), quoted)
    return _as_sql(_concat(head, _sql(',"deleted":true,"item":null}')), dialect)


def _as_sql(expression: ColumnElement[Any], dialect: str) -> str:
    compiler = _DIALECTS[dialect]()
    sql = str(expression.compile(dialect=compiler, compile_kwargs={"literal_binds": True}))
    return _wrapped(sql)


def _wrapped(sql: str, width: int = 96) -> str:
    """The SQL in lines of at most `width` where it can be (a migration holds it as text):
    a space outside a string constant becomes a line break, which changes nothing."""
    words, word, quoted = [], "", False
    for char in sql:
        if char == " " and not quoted:
            words.append(word)
            word = ""
            continue
        quoted ^= char == "'"  # a doubled quote inside a constant flips twice
        word += char
    words.append(word)
    lines = [words[0]]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) > width:
            lines.append(word)
        else:
            lines[-1] += " " + word
    return "\n".join(lines)


_DIALECTS: Mapping[str, Callable[[], Dialect]] = {
    "postgresql": postgresql.dialect,
    "sqlite": sqlite.dialect,
}


def _main() -> None:
    """Write each document's SQL to stdout as the migration that writes the triggers holds it:
    the command's output, for a developer to paste, not a log record."""
    for dialect, row in (("postgresql", "new"), ("sqlite", None)):
        for kind in get_args(Kind):
            sql = document(dialect, kind, row or _KINDS[kind][0].name)
            sys.stdout.write(f"-- {dialect}, {kind}\n{sql}\n\n")


if __name__ == "__main__":
    _main()
