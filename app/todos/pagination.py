"""Keyset pagination: the cursor carries the last row's sort value and id.

Each page continues strictly after that (value, id) pair in the sort order, so a walk returns
every row exactly once however many rows are inserted meanwhile, and a deep page costs the same
index range scan as the first one (no OFFSET).
"""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, or_

from app.pagination import bad_cursor, decode_cursor, encode_cursor, keyset_after, parse_aware
from app.todos.models import Priority, Todo, due_at
from app.todos.schemas import TodoListQuery
from app.validation import reject_nul

# Core columns, not mapped attributes: see READ_COLUMNS in app.todos.fields.
_C = cast(Table, Todo.__table__).c
_COLUMNS: dict[str, ColumnElement[Any]] = {
    "created_at": _C.created_at,
    "updated_at": _C.updated_at,
    # When the todo is due, whichever kind of due it has (ADR 0401): its own index.
    "due_date": due_at,
    "priority": _C.priority,
    "title": _C.title,
    "position": _C.position,
}
_NULLABLE = frozenset({"due_date"})
# The list statement's label for a sort value that is no column of TodoRead's (see cursor_value).
DUE_KEY = "due_key"


@dataclass(frozen=True, slots=True)
class SortOrder:
    field: str
    descending: bool

    @classmethod
    def parse(cls, sort: str) -> "SortOrder":
        return cls(sort.removeprefix("-"), sort.startswith("-"))

    @property
    def column(self) -> ColumnElement[Any]:
        return _COLUMNS[self.field]

    def order_by(self) -> list[Any]:
        column: ColumnElement[Any] = self.column
        tiebreak: ColumnElement[Any] = _C.id
        if self.descending:
            column, tiebreak = column.desc(), tiebreak.desc()
        # Rows without a due date go last in both directions.
        return [column.nulls_last() if self.field in _NULLABLE else column, tiebreak]

    def after(self, null_tail: bool) -> ColumnElement[bool]:
        """Rows strictly after the cursor row in this order; its values are after_params().
        A cursor row without a due date is already in the null tail (null_tail): only ids
        remain to order by there."""
        column = self.column
        if null_tail:
            last = bindparam("after_1", type_=_C.id.type)
            return and_(column.is_(None), _C.id < last if self.descending else _C.id > last)
        beyond = keyset_after((column, _C.id), descending=self.descending)
        return or_(beyond, column.is_(None)) if self.field in _NULLABLE else beyond


def query_signature(query: TodoListQuery) -> str:
    """Ties a cursor to the filters and sort it was made for."""
    parts = query.model_dump(mode="json", exclude={"limit", "cursor"})
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def encode_todo_cursor(order: SortOrder, fingerprint: str, last: Any) -> str:
    """A cursor after `last`, a row with the sort value and the id."""
    value = getattr(last, DUE_KEY if order.field == "due_date" else order.field)
    return encode_cursor(
        fingerprint, value.isoformat() if isinstance(value, datetime) else value, last.id
    )


def decode_todo_cursor(cursor: str, order: SortOrder, fingerprint: str) -> tuple[Any, uuid.UUID]:
    value, last_id = decode_cursor(cursor, fingerprint)
    try:
        return _typed_value(order, value), last_id
    except (ValueError, TypeError) as exc:
        raise bad_cursor() from exc


def _typed_value(order: SortOrder, value: Any) -> Any:
    if value is None and order.field in _NULLABLE:
        return None
    if order.field in ("created_at", "updated_at", "due_date"):
        return parse_aware(value)
    if order.field == "priority":
        if type(value) is not int:
            raise ValueError("cursor priority is not an int")
        return Priority(value).value  # ValueError outside the known ranks
    if type(value) is not str:
        raise ValueError("cursor title or position is not a string")
    return reject_nul(value)
