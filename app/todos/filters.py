"""The todo list's filters: each a condition on one column with a parameter of its own, so a
list statement depends only on which filters a request has (app.todos.repository builds one
per shape)."""

from typing import Any

from sqlalchemy import ColumnElement, bindparam

from app.todos.fields import C
from app.todos.models import Priority
from app.todos.schemas import TodoListQuery

FILTERS: dict[str, ColumnElement[bool]] = {
    "completed": C.completed == bindparam("completed"),
    "priority": C.priority == bindparam("priority"),
    # The pattern is escaped by params() (LIKE's own autoescape needs a literal).
    "q": C.title.icontains(bindparam("q"), escape="/")
    | C.description.icontains(bindparam("q"), escape="/"),
    # A todo without a due date matches neither bound (NULL comparisons are never true).
    "due_before": C.due_date < bindparam("due_before"),
    "due_after": C.due_date > bindparam("due_after"),
    "list_id": C.list_id == bindparam("list_id"),
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
    return {name: value for name, value in values.items() if value is not None}


def _escape_like(text: str) -> str:
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")
