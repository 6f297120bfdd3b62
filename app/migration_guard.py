"""What startup refuses to migrate, said plainly instead of as a traceback.

Two cases, both from the development loop (issue 24):

- The database is at a revision this code does not know: a newer release or another branch
  migrated it (a rollback, `git switch` with `make dev` running). Alembic can neither upgrade
  nor downgrade from there; the message says which revision, and what to run with which code.
- In development only: a migration file changed after it was applied. `make dev` reloads on
  every save under app/, so a migration is often applied while it is still being written; its
  later edits would never run, and nothing would say so. Each applied revision's file is
  fingerprinted (SHA-256) in a small table beside alembic_version, `dev_migration_files`, and a
  start that finds a file changed refuses, naming it. Why fingerprints rather than migrating
  only at start and on `make migrate`: a reload *is* a start (uvicorn runs a new process), and
  refusing is what makes an edit impossible to miss, whoever or whatever applied the file
  first (docs/adr/0201-development-migrations.md).

Outside development nothing is fingerprinted: a release's files do not change under a running
deployment, and a later release that reformats an old migration must not stop production.
"""

import hashlib
from collections.abc import Iterable
from pathlib import Path

from alembic.script import Script, ScriptDirectory
from sqlalchemy import Column, Connection, MetaData, String, Table, delete, insert, select
from sqlalchemy.engine import make_url

# Not a model: it exists only in development databases, and autogenerate ignores it
# (alembic/env.py), so `make migration` never proposes to drop it.
FINGERPRINT_TABLE = "dev_migration_files"
_fingerprints = Table(
    FINGERPRINT_TABLE,
    MetaData(),
    Column("revision", String(64), primary_key=True),
    Column("file", String(255), nullable=False),
    Column("sha256", String(64), nullable=False),
)
_ROOT = Path(__file__).resolve().parent.parent


class SchemaRefused(Exception):
    """Startup will not touch this schema. The message alone says what happened and what to
    do: servers and the migration Job print it without a traceback."""


def describe(url: str) -> str:
    """The database, as the messages name it: its URL without the password."""
    return make_url(url).render_as_string(hide_password=True)


def check_known(current: str | None, scripts: ScriptDirectory, database: str) -> None:
    """Refuse a database at a revision none of this code's migration files define."""
    if current is None or current in {script.revision for script in scripts.walk_revisions()}:
        return
    head = scripts.get_current_head()
    raise SchemaRefused(
        f"The database ({database}) is at revision {current}, which this code does not know:\n"
        f"a newer release or another branch migrated it (this code's newest revision is "
        f"{head}), and this code will not migrate it. Either:\n"
        f"- run the code that has revision {current} (the newer release, or the branch you "
        f"switched from);\n"
        f"- or, with that code, undo the migrations this code lacks: `alembic downgrade {head}`,"
        f" then start this code again;\n"
        f"- or, in development, start on a new database (make dev: remove ./todo-dev.db, or "
        f"set DEV_DATABASE_URL);\n"
        f"- or, for a deliberate rollback onto an expand-only schema, start without migrating "
        f"(MIGRATE_ON_STARTUP=false)."
    )


def check_unchanged(
    connection: Connection, scripts: ScriptDirectory, current: str | None, database: str
) -> None:
    """Refuse when an applied migration's file differs from the one that was applied.

    Fingerprints of revisions no longer applied (downgraded since) are dropped first, so a
    downgraded and edited file applies again and is fingerprinted anew."""
    _fingerprints.create(connection, checkfirst=True)
    applied = {script.revision: script for script in _applied(scripts, current)}
    rows = connection.execute(select(_fingerprints.c.revision, _fingerprints.c.sha256))
    known = {row.revision: row.sha256 for row in rows}
    stale = set(known) - set(applied)
    if stale:
        connection.execute(delete(_fingerprints).where(_fingerprints.c.revision.in_(stale)))
    changed = [
        script
        for revision, script in applied.items()
        if revision in known and known[revision] != _sha256(script)
    ]
    if not changed:
        return
    oldest = changed[-1]  # _applied walks from the newest down
    files = ", ".join(f"{_display(script)} (revision {script.revision})" for script in changed)
    before = oldest.down_revision if isinstance(oldest.down_revision, str) else "base"
    # A statement for a person to run, never executed here.
    accept = f"DELETE FROM {FINGERPRINT_TABLE} WHERE revision = '{oldest.revision}'"  # noqa: S608
    raise SchemaRefused(
        f"Migration file changed after it was applied to this database ({database}): {files}.\n"
        f"The database has the file as it was then and the edit was never applied, so startup "
        f"refuses. Either:\n"
        f"- apply the edit: bring back the file as it was applied (git stash), run "
        f"`alembic downgrade {before}` on this database, restore the edit, start again;\n"
        f"- or start on a new development database (make dev: remove ./todo-dev.db);\n"
        f"- or, if the edit changes no schema (a comment), accept the file as it is: {accept};"
    )


def record(connection: Connection, scripts: ScriptDirectory, current: str | None) -> None:
    """Fingerprint every applied revision that has none yet (just applied, or applied by
    `alembic upgrade` without the app)."""
    _fingerprints.create(connection, checkfirst=True)
    have = set(connection.scalars(select(_fingerprints.c.revision)))
    rows = [
        {"revision": script.revision, "file": _display(script), "sha256": _sha256(script)}
        for script in _applied(scripts, current)
        if script.revision not in have
    ]
    if rows:
        connection.execute(insert(_fingerprints), rows)


def forget(connection: Connection) -> None:
    """Drop every fingerprint (RESET_DB rebuilds the schema from the files as they are)."""
    _fingerprints.create(connection, checkfirst=True)
    connection.execute(delete(_fingerprints))


def _applied(scripts: ScriptDirectory, current: str | None) -> Iterable[Script]:
    if current is None:
        return []
    return [script for script in scripts.iterate_revisions(current, "base") if script]


def _sha256(script: Script) -> str:
    return hashlib.sha256(Path(script.path).read_bytes()).hexdigest()


def _display(script: Script) -> str:
    path = Path(script.path).resolve()
    return str(path.relative_to(_ROOT)) if path.is_relative_to(_ROOT) else str(path)
