"""todos.due_day, time_zone, remind_at and the due day's instants (issue 27)

Revision ID: 1ab93f0eca11
Revises: b24e6a0f3c71
Create Date: 2026-12-07 17:24:53

Expand only: nullable columns, which the release before neither reads nor writes. Its todos
keep due_date alone, and the due that filters, sorts and counts use is
coalesce(due_day_starts_at, due_date) (ADR 0401), so what it writes is due as before; the
index on that expression serves sort=due_date and the due filters. ix_todos_owner_due (on
due_date) stays while the release before sorts by it; the next release drops it.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "1ab93f0eca11"
down_revision: str | None = "b24e6a0f3c71"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INSTANTS = ("remind_at", "due_day_starts_at", "due_day_ends_at")


def upgrade() -> None:
    op.add_column("todos", sa.Column("due_day", sa.Date(), nullable=True))
    op.add_column("todos", sa.Column("time_zone", sa.String(length=64), nullable=True))
    for name in _INSTANTS:
        op.add_column("todos", sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_todos_owner_due_at",
        "todos",
        ["owner_id", sa.text("coalesce(due_day_starts_at, due_date)"), "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_todos_owner_due_at", table_name="todos")
    for name in reversed(_INSTANTS):
        op.drop_column("todos", name)
    op.drop_column("todos", "time_zone")
    op.drop_column("todos", "due_day")
