"""What autogenerate compares: one thing SQLite cannot report as it is stored.

SQLite adds a foreign key only inline with a column (ALTER TABLE ADD COLUMN ... REFERENCES),
and SQLAlchemy's SQLite reflection reads names and ON DELETE only from table-level FOREIGN KEY
clauses: todos.parent_id's key (migration 9c4d2e7a1b58) reflects without its name and its
cascade, so autogenerate would "fix" it with an ALTER SQLite cannot run. On SQLite that one
key is left out of the comparison; PostgreSQL compares it, and the tests delete a parent on
both (tests/todos/test_subtasks.py).
"""

from collections.abc import Callable

from sqlalchemy import ForeignKeyConstraint
from sqlalchemy.sql.schema import SchemaItem

# (table, columns) of keys added inline on SQLite.
_INLINE_ON_SQLITE = {("todos", ("parent_id",))}

IncludeObject = Callable[[SchemaItem, str | None, str, bool, SchemaItem | None], bool]


def include_object(dialect: str) -> IncludeObject:
    def include(
        item: SchemaItem, name: str | None, type_: str, reflected: bool, other: SchemaItem | None
    ) -> bool:
        if dialect != "sqlite" or not isinstance(item, ForeignKeyConstraint):
            return True
        key = (item.table.name, tuple(column.name for column in item.columns))
        return key not in _INLINE_ON_SQLITE

    return include
