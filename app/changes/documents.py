"""A change as JSON text written by the database: the feed's page is joined from these.

A feed page is up to 1000 lists and todos. Handing each row's dozen columns to Python, converting
them (timestamps, UUIDs, the priority's name) and serialising the result cost the feed more than
twice what a list page of 20 todos costs (bench: changes; profiled, most of it was per row and
per column work in SQLAlchemy and in the app). The statement instead returns every change as
the finished JSON of ChangeRead, and the page is those texts joined with commas.

The texts are what the ordinary routes write through pydantic (ListRead, TodoRead), on
PostgreSQL and SQLite alike: field names and order, ids as lowercase hyphenated UUIDs,
timestamps in UTC as `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` (the fraction only when it is not zero, as
pydantic writes it), priority by name, strings quoted by the database's own JSON function
(to_json, json_quote), which escapes exactly as pydantic does: the short escapes, \\u00XX for
other control characters, everything else as UTF-8. tests/changes/test_documents.py compares
them with GET of each object on every backend.

Everything is built with `||`, which both databases have; only the quoting of a value differs.
"""

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import (
    ColumnElement,
    SQLColumnExpression,
    String,
    case,
    cast,
    func,
    literal_column,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.functions import coalesce

from app.lists.models import TodoList
from app.lists.schemas import ListRead
from app.todos.models import Priority, Todo
from app.todos.schemas import TodoRead

Expr = SQLColumnExpression[Any]


def _sql(text: str) -> Expr:
    """A string constant written into the statement (not a parameter: the statement is built
    once, and 30 parameters per execution would cost more than they save)."""
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

# How each field of ListRead and TodoRead but the id is written: (column, writer). Checked
# against the models below, so a field added to either fails at import until it is written
# here too. The id is the change's own (the page's `id` column).
_WriteField = Callable[[_JsonText, Expr], Expr]
_LIST_FIELDS: Mapping[str, tuple[Expr, _WriteField]] = {
    "name": (TodoList.name, lambda d, v: d.string(v, nullable=False)),
    "position": (TodoList.position, lambda d, v: d.string(v, nullable=False)),
    "is_default": (TodoList.is_default, lambda d, v: d.boolean(v)),
    "created_at": (TodoList.created_at, lambda d, v: d.timestamp(v, nullable=False)),
    "updated_at": (TodoList.updated_at, lambda d, v: d.timestamp(v, nullable=False)),
}
_TODO_FIELDS: Mapping[str, tuple[Expr, _WriteField]] = {
    "title": (Todo.title, lambda d, v: d.string(v, nullable=False)),
    "description": (Todo.description, lambda d, v: d.string(v, nullable=True)),
    "completed": (Todo.completed, lambda d, v: d.boolean(v)),
    "priority": (Todo.priority, lambda d, v: d.priority(v)),
    "due_date": (Todo.due_date, lambda d, v: d.timestamp(v, nullable=True)),
    "completed_at": (Todo.completed_at, lambda d, v: d.timestamp(v, nullable=True)),
    "created_at": (Todo.created_at, lambda d, v: d.timestamp(v, nullable=False)),
    "updated_at": (Todo.updated_at, lambda d, v: d.timestamp(v, nullable=False)),
    # Nullable in the table only while the release before this one may still insert (a
    # trigger fills it in at once); the contract's todo always has one.
    "list_id": (Todo.list_id, _JsonText.uuid),
    "position": (Todo.position, lambda d, v: d.string(v, nullable=False)),
}
for _model, _fields in ((ListRead, _LIST_FIELDS), (TodoRead, _TODO_FIELDS)):
    if list(_model.model_fields) != ["id", *_fields]:
        raise RuntimeError(f"app.changes.documents does not write {_model.__name__} as it is")


def _object(
    writer: _JsonText, quoted_id: Expr, fields: Mapping[str, tuple[Expr, _WriteField]]
) -> Expr:
    parts: list[Expr] = [_sql('{"id":'), quoted_id]
    for name, (column, write) in fields.items():
        parts += [_sql(f',"{name}":'), write(writer, column)]
    return _concat(*parts, _sql("}"))


def _as_sql(expression: ColumnElement[Any], dialect: Dialect) -> ColumnElement[str]:
    """The expression as the text of SQL. SQLAlchemy walks a statement's expression tree on
    every execution (its cache key): a document's few hundred nodes cost a feed request more
    than all of the rest of its statement handling, a literal column's text next to nothing."""
    sql = expression.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return literal_column(str(sql), String())


def quoted_id(dialect: Dialect, object_id: Expr) -> ColumnElement[str]:
    """A list's or todo's id as a JSON string."""
    return _as_sql(_JsonText(dialect.name).uuid(object_id), dialect)


def change_document(dialect: Dialect, kind: Expr, quoted_id: Expr) -> ColumnElement[str]:
    """ChangeRead as JSON text, for a change (its kind, and its id from quoted_id()) outer-joined
    to `lists` and `todos`, the tables by those names, not aliased: whichever row the join found
    is the object's latest state, and an object found in neither is gone, a tombstone. NULL
    only if a value could not be written."""
    writer = _JsonText(dialect.name)
    head = _concat(_sql('{"type":"'), kind, _sql('","id":'), quoted_id)
    # Gone is decided by the joins alone: a value the writers turned into NULL (to_char's
    # NULL for infinity was one) makes the whole document NULL, which the feed refuses
    # (service.UnwrittenChange), rather than passing for a deletion.
    rest = case(
        (TodoList.id.is_not(None), _item(_object(writer, quoted_id, _LIST_FIELDS))),
        (Todo.id.is_not(None), _item(_object(writer, quoted_id, _TODO_FIELDS))),
        else_=_sql(',"deleted":true,"item":null}'),
    )
    return _as_sql(_concat(head, rest), dialect)


def _item(item: Expr) -> Expr:
    return _concat(_sql(',"deleted":false,"item":'), item, _sql("}"))
