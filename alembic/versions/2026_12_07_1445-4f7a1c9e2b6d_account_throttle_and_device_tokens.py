"""device_tokens; login_failures.user_id and .device_id (the account-wide login cap)

Expand only: a new table, two nullable columns and their indexes; nothing is dropped or
rewritten. The release before this one keeps working while it is applied: it never reads the
new columns, and its failures (written without them) count per email and address as before.

Revision ID: 4f7a1c9e2b6d
Revises: cd0b552f17fe
Create Date: 2026-12-07 14:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "4f7a1c9e2b6d"
down_revision: str | None = "cd0b552f17fe"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "device_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_device_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_device_tokens_token_hash")),
    )
    op.create_index(op.f("ix_device_tokens_user_id"), "device_tokens", ["user_id"])
    with op.batch_alter_table("login_failures") as batch:
        batch.add_column(sa.Column("user_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("device_id", sa.Uuid(), nullable=True))
    op.create_index(
        "ix_login_failures_user_id_failed_at", "login_failures", ["user_id", "failed_at"]
    )
    op.create_index(
        "ix_login_failures_device_id_failed_at", "login_failures", ["device_id", "failed_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_login_failures_device_id_failed_at", table_name="login_failures")
    op.drop_index("ix_login_failures_user_id_failed_at", table_name="login_failures")
    with op.batch_alter_table("login_failures") as batch:
        batch.drop_column("device_id")
        batch.drop_column("user_id")
    op.drop_index(op.f("ix_device_tokens_user_id"), table_name="device_tokens")
    op.drop_table("device_tokens")
