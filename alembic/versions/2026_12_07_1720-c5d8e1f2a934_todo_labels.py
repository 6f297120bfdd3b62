"""todo labels: todos.labels (as given) and todo_labels (casefolded, indexed)

Revision ID: c5d8e1f2a934
Revises: e5c1d7a93b42
Create Date: 2026-12-07 17:20:00

Expand only. The release before never reads either: its inserts get the column's server
default (no labels) and no todo_labels rows, which is right; its updates never touch labels,
so the two stay in step; its deletes cascade to todo_labels. Existing todos have no labels,
so there is nothing to fill. The downgrade drops both (SQLite 3.35+ drops a column in place,
keeping the todos table's triggers).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "c5d8e1f2a934"
down_revision: str | None = "e5c1d7a93b42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "todos",
        sa.Column(
            "labels",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            server_default=sa.text("'[]'"),
            nullable=False,
        ),
    )
    op.create_table(
        "todo_labels",
        sa.Column("todo_id", sa.Uuid(), nullable=False),
        sa.Column("name_key", sa.String(length=150), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.ForeignKeyConstraint(
            ["todo_id"],
            ["todos.id"],
            name=op.f("fk_todo_labels_todo_id_todos"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("todo_id", "name_key", name=op.f("pk_todo_labels")),
    )
    op.create_index(
        "ix_todo_labels_user_key", "todo_labels", ["user_id", "name_key", "todo_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_todo_labels_user_key", table_name="todo_labels")
    op.drop_table("todo_labels")
    op.drop_column("todos", "labels")
