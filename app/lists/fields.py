"""A list's fields, listed once (see app.todos.fields; tests/lists/test_fields.py checks them)."""

from typing import cast

from sqlalchemy import Column, Table

from app.lists.models import TodoList

TABLE = cast(Table, TodoList.__table__)
C = TABLE.c

# ListRead's fields, in its order.
READ = ("id", "name", "position", "is_default", "created_at", "updated_at", "version")
WRITABLE = ("name",)
READ_COLUMNS: tuple[Column[object], ...] = tuple(C[name] for name in READ)
