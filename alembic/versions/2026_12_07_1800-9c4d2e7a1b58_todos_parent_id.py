"""todos.parent_id: subtasks, one level (v1.3, issue 27)

Revision ID: 9c4d2e7a1b58
Revises: 1ab93f0eca11
Create Date: 2026-12-07 18:00:00

Expand only: a nullable column with a foreign key to todos.id (ON DELETE CASCADE) and an index
on (owner_id, parent_id, position, id). The release before never reads or writes it: its
inserts leave it NULL (a top-level todo), and its delete of a parent deletes the subtasks
through the foreign key, as this release does.

During a rolling upgrade the release before can still break one rule this release keeps in
its service: it moves a todo to another list without its subtasks (PATCH list_id or a move),
which leaves them in the old list under a parent in another one. Nothing fails on that: the
subtasks stay readable, listable and writable, parent_id= still finds them, and the next
move of the parent by this release takes them along into the parent's list. A client that
wants them back moves them (a move with parent_id). Preventing it would need a trigger the
release before would trip on with a 500; a rare, harmless, repairable state is preferred.

Downgrade drops the index and the column (SQLite 3.35+ drops a column in place, so the
table keeps its triggers): subtasks become top-level todos of their lists.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "9c4d2e7a1b58"
down_revision: str | None = "1ab93f0eca11"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FK = "fk_todos_parent_id_todos"
_INDEX = "ix_todos_owner_parent_position"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a foreign key only inline with the column (no ALTER ... ADD CONSTRAINT);
        # a batch copy would lose the table's triggers (docs/adding-a-field.md).
        op.execute(
            f"ALTER TABLE todos ADD COLUMN parent_id CHAR(32) CONSTRAINT {_FK} "
            "REFERENCES todos (id) ON DELETE CASCADE"
        )
    else:
        op.add_column("todos", sa.Column("parent_id", sa.Uuid(), nullable=True))
        op.create_foreign_key(_FK, "todos", "todos", ["parent_id"], ["id"], ondelete="CASCADE")
    op.create_index(_INDEX, "todos", ["owner_id", "parent_id", "position", "id"])


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="todos")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(_FK, "todos", type_="foreignkey")
    op.drop_column("todos", "parent_id")
