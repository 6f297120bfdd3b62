"""users/refresh_tokens.credential_generation; login_failures.client_address

Expand-only: new columns with server defaults (existing users and refresh tokens start at
generation 0, existing failures have no address) and one index; nothing is dropped.

Revision ID: 9d2f4c1a7b3e
Revises: 3b1e6f0c2d4a
Create Date: 2026-11-30 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "9d2f4c1a7b3e"
down_revision: str | None = "3b1e6f0c2d4a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _generation() -> sa.Column[int]:
    return sa.Column(
        "credential_generation", sa.Integer(), server_default=sa.text("0"), nullable=False
    )


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(_generation())
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.add_column(_generation())
    with op.batch_alter_table("login_failures") as batch:
        batch.add_column(
            sa.Column(
                "client_address",
                sa.String(length=64),
                server_default=sa.text("''"),
                nullable=False,
            )
        )
    op.create_index(
        "ix_login_failures_client_address_failed_at",
        "login_failures",
        ["client_address", "failed_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_login_failures_client_address_failed_at", table_name="login_failures")
    with op.batch_alter_table("login_failures") as batch:
        batch.drop_column("client_address")
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("credential_generation")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("credential_generation")
