"""notify committed changes: record_change also sends pg_notify('todo_changes', owner)

Revision ID: e5c1d7a93b42
Revises: 3e8d5a1c7f42
Create Date: 2026-12-07 18:00:00

A feed request may wait for the user's next change (`wait=N`, app.changes.waiting): each
worker LISTENs on one direct connection and wakes the waiters of the user a notification
names. The notification is sent by the recording trigger, inside the writing transaction, so
PostgreSQL delivers it only when that transaction commits (never a wake for a change that is
not visible yet, or that rolls back), and every writer that records a change also announces
it, the release before this one included. Identical notifications of one transaction are
folded into one by PostgreSQL: a bulk write announces each owner once.

SQLite has no NOTIFY: its workers poll the change clock instead. Nothing changes there.

The release before ignores the notifications (nobody it runs LISTENs); the downgrade puts the
function back as b24e6a0f3c71 left it.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "e5c1d7a93b42"
down_revision: str | None = "3e8d5a1c7f42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "todo_changes"
_END = "\n    RETURN NULL;\nEND $$"


def _documents_migration() -> ModuleType:
    (path,) = Path(__file__).parent.glob("*-cd0b552f17fe_*.py")
    spec = importlib.util.spec_from_file_location("_migration_cd0b552f17fe", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _replace_record_change(notify: bool) -> None:
    """record_change as b24e6a0f3c71 left it (cd0b552f17fe's text), or with the notification;
    the triggers call it by name, so replacing it replaces what they do."""
    if op.get_bind().dialect.name != "postgresql":
        return
    previous = _documents_migration()
    sql: str = previous._pg_record_change(with_document=False)
    if notify:
        if sql.count(_END) != 1:
            raise RuntimeError("record_change is not the function this migration extends")
        notification = f"\n    PERFORM pg_notify('{CHANNEL}', CAST(owner AS text));"
        sql = sql.replace(_END, notification + _END)
    previous._execute(sql)


def upgrade() -> None:
    _replace_record_change(notify=True)


def downgrade() -> None:
    _replace_record_change(notify=False)
