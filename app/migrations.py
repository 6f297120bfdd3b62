"""Bring the schema to head, once, however many processes start together.

Every worker of every replica runs this in its lifespan (unless MIGRATE_ON_STARTUP=false), and
`python -m app.migrations` runs it as a step of its own (the Kubernetes Job). A file lock per
database serialises the workers of one machine or container; on PostgreSQL an advisory lock also
serialises replicas that share the database. Whoever gets the locks first migrates; everyone
after finds the schema at head. Both paths connect with MIGRATION_DATABASE_URL when it is set:
the advisory lock belongs to a session, which a transaction-mode pooler does not keep.
`python -m app.migrations --wait SECONDS` migrates nothing: it waits for the schema to reach
this code's head (a pod's init container, so that no new pod serves before the Job is done).
"""

import argparse
import hashlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from alembic import command
from app import migration_guard as guard
from app.config import Settings, get_settings
from app.engines import create_migration_engine
from app.logs import configure_logging

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
# An arbitrary constant that names "the todo-api schema migration" among advisory locks.
ADVISORY_LOCK_KEY = 0x70D0A91


SCRIPTS = ROOT / "alembic"


def alembic_config(connection: Connection | None = None, scripts: Path = SCRIPTS) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(scripts))
    # env.py uses this connection instead of building its own engine.
    config.attributes["connection"] = connection
    return config


def migration_lock_path(settings: Settings) -> Path:
    """The file lock that serialises the processes migrating one database: MIGRATION_LOCK_PATH,
    or one per database in the temp directory. Named after the database schema work connects
    to, spelled one way (the backend without its driver, no password, a SQLite file by its
    absolute path), so every worker of a container for one database takes the same file, and
    two checkouts on one machine (each with its own ./todo.db) take two. Per user: a file
    another user created first could not be opened for writing."""
    if settings.migration_lock_path is not None:
        return settings.migration_lock_path
    schema = settings.for_schema_work()
    url = make_url(schema.database_url)
    if schema.is_sqlite:
        where = str(Path(url.database or "").resolve()) if url.database else ":memory:"
        identity = f"sqlite:{where}"
    else:
        identity = f"postgresql://{url.username}@{url.host}:{url.port or 5432}/{url.database}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"todo-api-migrations-{os.getuid()}-{digest}.lock"


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@contextmanager
def migration_lock(settings: Settings, engine: Engine) -> Iterator[Connection]:
    """A connection for schema work, once this process holds the locks. The file lock comes
    first, before connecting: on a new SQLite file the first connections also race to switch
    it to WAL, which SQLite refuses at once rather than waiting for."""
    lock = FileLock(str(migration_lock_path(settings)), timeout=300)
    with lock, engine.connect() as connection:
        if connection.dialect.name != "postgresql":
            yield connection
            return
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        connection.commit()
        try:
            yield connection
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
            connection.commit()


def upgrade_to_head(settings: Settings, engine: Engine, scripts: Path = SCRIPTS) -> bool:
    """Migrate if needed; True if this call did the migrating. SchemaRefused (a plain message,
    app.migration_guard) for a database at a revision this code does not know, or, in
    development, for a migration file that changed after it was applied."""
    directory = ScriptDirectory.from_config(alembic_config(scripts=scripts))
    database = guard.describe(engine.url.render_as_string(hide_password=False))
    fingerprints = settings.environment == "development"
    with migration_lock(settings, engine) as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        guard.check_known(current, directory, database)
        if fingerprints:
            guard.check_unchanged(connection, directory, current, database)
        connection.commit()
        head = directory.get_current_head()
        if current != head:
            logger.info("migrating database from %s to head", current or "empty")
            command.upgrade(alembic_config(connection, scripts), "head")
            connection.commit()
        if fingerprints:
            guard.record(connection, directory, head)
            connection.commit()
        return current != head


def reset_database(settings: Settings, engine: Engine) -> None:
    """Drop everything and rebuild from the migrations (then the caller loads demo data)."""
    if settings.environment == "production":
        raise RuntimeError("RESET_DB is refused when ENVIRONMENT=production")
    directory = ScriptDirectory.from_config(alembic_config())
    database = guard.describe(engine.url.render_as_string(hide_password=False))
    with migration_lock(settings, engine) as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        guard.check_known(current, directory, database)
        connection.commit()
        logger.warning("RESET_DB: dropping and rebuilding the schema")
        command.downgrade(alembic_config(connection), "base")
        command.upgrade(alembic_config(connection), "head")
        connection.commit()
        if settings.environment == "development":
            guard.forget(connection)
            guard.record(connection, directory, directory.get_current_head())
            connection.commit()


def schema_is_current(engine: Engine) -> bool:
    """At this code's head, or at a revision this code does not know (a newer release's, after
    a rollback): expand/contract migrations keep the schema usable by the release before."""
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    scripts = ScriptDirectory.from_config(alembic_config())
    known = {script.revision for script in scripts.walk_revisions()}
    return current is not None and (current == scripts.get_current_head() or current not in known)


def wait_until_current(engine: Engine, timeout: float, interval: float = 2.0) -> bool:
    """Poll until the schema is current (another process migrates it); False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if schema_is_current(engine):
                return True
        except OperationalError as exc:  # the database not up yet is one more reason to wait
            logger.info("database not reachable yet: %s", type(exc.orig).__name__)
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    """Migrate to head behind the same locks as startup (or, with --wait, only wait for
    someone else to); 0 when the schema is at head."""
    parser = argparse.ArgumentParser(prog="python -m app.migrations", description=__doc__)
    parser.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="do not migrate: wait up to SECONDS for the schema to reach this code's head",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    if (
        args.wait is None
        and settings.db_pooler == "transaction"
        and not settings.migration_database_url
    ):
        logger.error("DB_POOLER=transaction: set MIGRATION_DATABASE_URL to a direct connection")
        return 2  # the advisory lock would not hold through the pooler
    engine = create_migration_engine(settings.for_schema_work())
    try:
        if args.wait is not None:
            return _wait(engine, args.wait)
        migrated = upgrade_to_head(settings, engine)
    except guard.SchemaRefused as refused:  # says all there is to say: no traceback
        logger.error("%s", refused)
        return 1
    except Exception:
        logger.exception("migration failed")
        return 1
    finally:
        engine.dispose()
    logger.info("schema at head %s (%s)", head_revision(), "migrated" if migrated else "unchanged")
    return 0


def _wait(engine: Engine, timeout: float) -> int:
    if wait_until_current(engine, timeout):
        logger.info("schema is current for head %s", head_revision())
        return 0
    logger.error(
        "schema not at head %s after %s s: has the migration run?", head_revision(), timeout
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
