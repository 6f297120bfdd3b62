"""todos recurrence: a todo's RRULE, its series' anchor and when it was last completed

Revision ID: f948e0f6ad0f
Revises: 9c4d2e7a1b58
Create Date: 2026-12-07 18:14:11.513175

Expand only: three nullable columns the release before neither reads nor writes. While it
runs beside this one, a recurring todo it completes is simply completed, and a due it sets
keeps the series' anchor (COUNT then counts from the old first due).
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "f948e0f6ad0f"
down_revision: str | None = "9c4d2e7a1b58"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("todos", sa.Column("recurrence", sa.String(length=200), nullable=True))
    op.add_column("todos", sa.Column("recurrence_anchor", sa.DateTime(timezone=True)))
    op.add_column("todos", sa.Column("last_completed_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("todos", "last_completed_at")
    op.drop_column("todos", "recurrence_anchor")
    op.drop_column("todos", "recurrence")
