"""recording-only change triggers: the feed writes its JSON in Python (issue 24)

Revision ID: b24e6a0f3c71
Revises: 7a4e2b9c5d13
Create Date: 2026-12-07 16:00:00

The recording triggers on lists and todos go back to what the lists migration wrote: they
stamp each change (owner, deleted, txid, changed_at) and write no document. The feed reads
each change's object in the page's own statement and serialises it with the models GET uses
(app.changes.repository, app.changes.service), so a field added to a todo needs no trigger.

The release before reads `changes.document`. Left in place, a document would go stale there
at its object's next change, and that release would serve the old state as current: a synced
client would keep it for good. So the upgrade empties every document. The release before
answers a page holding an unwritten document with a 500 (its rule: never a false state), so
while both releases run, its replicas fail feed requests, which clients retry, and never lie.
The column stays, so that release still starts, and a downgrade can fill it. The downgrade puts
the document-writing triggers back and writes every row's document again, so the release
before works at once after it.

The previous triggers' SQL is cd0b552f17fe's, loaded from that file (a released migration does
not change, so its text is as fixed as a copy, without 200 lines of generated SQL twice).
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "b24e6a0f3c71"
down_revision: str | None = "7a4e2b9c5d13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _documents_migration() -> ModuleType:
    (path,) = Path(__file__).parent.glob("*-cd0b552f17fe_*.py")
    spec = importlib.util.spec_from_file_location("_migration_cd0b552f17fe", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    _documents_migration()._replace_triggers(with_document=False)
    op.execute("UPDATE changes SET document = NULL WHERE document IS NOT NULL")


def downgrade() -> None:
    previous = _documents_migration()
    previous._replace_triggers(with_document=True)
    postgres = op.get_bind().dialect.name == "postgresql"
    # Every row's document as the triggers would have written it (cd0b552f17fe's upgrade).
    alias = ' AS "new"' if postgres else ""
    for table, kind, written in (
        ("lists", "list", previous._PG_LIST if postgres else previous._SQLITE_LIST),
        ("todos", "todo", previous._PG_TODO if postgres else previous._SQLITE_TODO),
    ):
        row = '"new"' if postgres else table
        previous._execute(
            f"UPDATE changes SET document = (SELECT {written} FROM {table}{alias}"  # noqa: S608
            f" WHERE {row}.id = changes.object_id) WHERE kind = '{kind}' AND NOT deleted"
        )
    tombstone = previous._PG_OLD_TOMBSTONE if postgres else previous._SQLITE_OLD_TOMBSTONE
    previous._execute(f"UPDATE changes SET document = {tombstone} WHERE deleted")  # noqa: S608
