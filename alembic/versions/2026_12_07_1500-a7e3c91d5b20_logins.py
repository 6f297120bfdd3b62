"""logins: one row per login (refresh-token family), the row its refreshes and endings lock

Revision ID: a7e3c91d5b20
Revises: 4f7a1c9e2b6d
Create Date: 2026-12-07 15:00:00

Expand only: a new table, filled with one row per family the refresh tokens already have
(started at its oldest token, ending 90 days later, the REFRESH_TOKEN_ABSOLUTE_DAYS default
when this was written; revoked if every token of it is). refresh_tokens is untouched and gets
no foreign key to logins yet: the release before this one keeps issuing tokens of families
that have no row here, and this release creates a family's row the first time it meets one
without (app.auth.logins.lock). A later release, once no replica of the previous one is left,
may add refresh_tokens.family_id -> logins.id (docs/adr/0101-refresh-token-families.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "a7e3c91d5b20"
down_revision: str | None = "4f7a1c9e2b6d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIFETIME_DAYS = 90
# Per backend: the family's start plus the lifetime, as that backend stores UTCDateTime.
_END = {
    "postgresql": f"min(created_at) + interval '{_LIFETIME_DAYS} days'",
    "sqlite": f"strftime('%Y-%m-%d %H:%M:%f000', min(created_at), '+{_LIFETIME_DAYS} days')",
}
_BACKFILL = """
INSERT INTO logins (id, user_id, created_at, expires_at, revoked_at)
SELECT family_id, user_id, min(created_at), {end},
       CASE WHEN count(revoked_at) = count(*) THEN max(revoked_at) END
FROM refresh_tokens
GROUP BY family_id, user_id
"""


def upgrade() -> None:
    op.create_table(
        "logins",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_logins_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logins")),
    )
    op.create_index(op.f("ix_logins_user_id"), "logins", ["user_id"], unique=False)
    op.execute(_BACKFILL.format(end=_END[op.get_bind().dialect.name]))


def downgrade() -> None:
    op.drop_index(op.f("ix_logins_user_id"), table_name="logins")
    op.drop_table("logins")
