"""The todo list's filters: each a condition on one column with a parameter of its own, so a
list statement depends only on which filters a request has (app.todos.repository builds one
per shape)."""

from typing import Any

from sqlalchemy import ColumnElement, bindparam

from app.todos.fields import C
from app.todos.labels_repository import having_label
from app.todos.models import Priority, due_at
from app.todos.schemas import MAX_LABELS, TodoListQuery, label_key

# label=: one condition per distinct label asked for, each with its own parameter.
_LABEL_PARAMS = tuple(f"label_{i}" for i in range(MAX_LABELS))

FILTERS: dict[str, ColumnElement[bool]] = {
    "completed": C.completed == bindparam("completed"),
    "priority": C.priority == bindparam("priority"),
    # The pattern is escaped by params() (LIKE's own autoescape needs a literal).
    "q": C.title.icontains(bindparam("q"), escape="/")
    | C.description.icontains(bindparam("q"), escape="/"),
    # By when a todo is due, an all-day one at the start of its day (app.todos.models.due_at);
    # a todo without a due matches neither bound (NULL comparisons are never true).
    "due_before": due_at < bindparam("due_before"),
    "due_after": due_at > bindparam("due_after"),
    "list_id": C.list_id == bindparam("list_id"),
    **{name: having_label(name) for name in _LABEL_PARAMS},
    "parent_id": C.parent_id == bindparam("parent_id"),
    # top_level=true and =false: conditions without a parameter of their own.
    "top_level": C.parent_id.is_(None),
    "subtasks": C.parent_id.is_not(None),
}


def params(query: TodoListQuery) -> dict[str, Any]:
    """The query's filters as FILTERS' parameters; only those the request has."""
    values: dict[str, Any] = {
        "completed": query.completed,
        "priority": None if query.priority is None else Priority[query.priority].value,
        "q": None if query.q is None else _escape_like(query.q),
        "due_before": query.due_before,
        "due_after": query.due_after,
        "list_id": query.list_id,
        "parent_id": query.parent_id,
        "top_level": True if query.top_level else None,
        "subtasks": True if query.top_level is False else None,
    }
    # Ignoring case: the same label asked for twice is one condition.
    labels = dict.fromkeys(label_key(name) for name in query.label)
    values.update(zip(_LABEL_PARAMS, labels, strict=False))
    return {name: value for name, value in values.items() if value is not None}


def _escape_like(text: str) -> str:
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")
