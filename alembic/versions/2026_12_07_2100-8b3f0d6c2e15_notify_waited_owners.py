"""notify only waited-for owners: change_waiters, and record_change notifies only its owners

Revision ID: 8b3f0d6c2e15
Revises: f948e0f6ad0f
Create Date: 2026-12-07 21:00:00

e5c1d7a93b42 made every recorded change send pg_notify: about 50 µs of database CPU per write,
and PostgreSQL commits notifying transactions one at a time (a database-wide lock), which took
a one-row INSERT under 16 clients from ~8,600 to ~3,000 transactions/s. Most writes have
nobody waiting for them. Now a waiting feed request registers a row in change_waiters
(app.changes.registry) before its last read, and the trigger notifies only when the owner has
an unexpired row. The table is UNLOGGED on PostgreSQL: transient, and a row lost in a crash
only costs a late answer (the LISTEN connection drops with the server, waiters recheck until it
is back, then every waiter registers again and reads).

The race this closes: a writer's trigger looks before a waiter registers, the waiter reads
before that writer commits, and nobody notifies. So the trigger takes a shared advisory lock
on the owner (held to commit) before it looks, and a registration takes it exclusively: it
waits for the writers that looked without seeing it. Outside READ COMMITTED a trigger's
statement sees the transaction's first snapshot, not a registration made since: there it
notifies always, as before.

Expand/contract: the release before keeps writing (its writes go through this very trigger
function), but its waiters do not register: after this upgrade they are woken only for owners
that a new-release waiter also waits for, and otherwise answer on their own recheck (every
RECHECK_SECONDS, app.changes.waiting, while the LISTEN connection is down) or at the end of
their wait: late by up to `wait` seconds (60 at most), never wrong, for as long as both
releases run. SQLite: the table exists and is unused (its waiters poll the change clock).

The downgrade puts back e5c1d7a93b42's function (a notification for every change).
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa

from alembic import op

revision: str = "8b3f0d6c2e15"
down_revision: str | None = "f948e0f6ad0f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_END = "\n    RETURN NULL;\nEND $$"
# The channel is app.changes.notifications.CHANNEL; the advisory lock's class (its two-key
# form) is app.changes.waiter_repository.LOCK_CLASS.
_NOTIFY_WAITED = """
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        PERFORM pg_notify('todo_changes', CAST(owner AS text));
    ELSE
        -- Held to commit: a registration of this owner waits for it (see the migration).
        PERFORM pg_advisory_xact_lock_shared(412, hashtext(CAST(owner AS text)));
        IF EXISTS (SELECT 1 FROM change_waiters
                   WHERE user_id = owner AND expires_at > now()) THEN
            PERFORM pg_notify('todo_changes', CAST(owner AS text));
        END IF;
    END IF;"""


def _migration(revision_id: str) -> ModuleType:
    (path,) = Path(__file__).parent.glob(f"*-{revision_id}_*.py")
    spec = importlib.util.spec_from_file_location(f"_migration_{revision_id}", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "change_waiters",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_waiters")),
        prefixes=["UNLOGGED"] if postgres else [],
    )
    op.create_index(op.f("ix_change_waiters_user_id"), "change_waiters", ["user_id"], unique=False)
    if not postgres:
        return
    documents = _migration("cd0b552f17fe")
    sql: str = documents._pg_record_change(with_document=False)
    if sql.count(_END) != 1:
        raise RuntimeError("record_change is not the function this migration extends")
    # The triggers call it by name: replacing the function replaces what they do.
    documents._execute(sql.replace(_END, _NOTIFY_WAITED + _END))


def downgrade() -> None:
    _migration("e5c1d7a93b42")._replace_record_change(notify=True)
    op.drop_index(op.f("ix_change_waiters_user_id"), table_name="change_waiters")
    op.drop_table("change_waiters")
