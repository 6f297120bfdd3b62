"""The todo list's filters: each a condition on one column with a parameter of its own, so a
list statement depends only on which filters a request has (app.todos.repository builds one
per shape)."""

from typing import Any

from sqlalchemy import ColumnElement, bindparam

from app.todos.fields import C
from app.todos.models import Priority, due_at
from app.todos.schemas import TodoListQuery

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
    }
    return {name: value for name, value in values.items() if value is not None}


def _escape_like(text: str) -> str:
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")
