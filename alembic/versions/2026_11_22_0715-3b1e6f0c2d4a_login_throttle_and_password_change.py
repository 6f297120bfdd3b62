"""login throttle table; users.password_changed_at

Revision ID: 3b1e6f0c2d4a
Revises: 7cfc3b9a4989
Create Date: 2026-11-22 07:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "3b1e6f0c2d4a"
down_revision: str | None = "7cfc3b9a4989"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    op.create_index("ix_login_failures_email_failed_at", "login_failures", ["email", "failed_at"])


def downgrade() -> None:
    op.drop_table("login_failures")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("password_changed_at")
