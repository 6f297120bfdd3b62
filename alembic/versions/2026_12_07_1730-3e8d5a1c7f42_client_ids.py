"""client_ids: the ids clients chose for their lists and todos (v1.4, issue 28)

Revision ID: 3e8d5a1c7f42
Revises: b24e6a0f3c71
Create Date: 2026-12-07 17:30:00

Expand only: a new table, written by creates that carry an `id` (app.client_ids). The
release before never reads or writes it, and its creates (ids it chooses itself) need no row
there. Downgrading drops it: the release before offers no client-chosen ids.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "3e8d5a1c7f42"
down_revision: str | None = "b24e6a0f3c71"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "client_ids",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=4), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_client_ids_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_ids")),
    )
    op.create_index(op.f("ix_client_ids_owner_id"), "client_ids", ["owner_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_client_ids_owner_id"), table_name="client_ids")
    op.drop_table("client_ids")
