"""Bring the schema to head, once, however many processes start together.

Every worker of every replica runs this in its lifespan (unless MIGRATE_ON_STARTUP=false), and
`python -m app.migrations` runs it as a step of its own (the Kubernetes Job). A file lock
serialises the workers of one machine or container; on PostgreSQL an advisory lock also
serialises replicas that share the database. Whoever gets the locks first migrates; everyone
after finds the schema at head. Both paths connect with MIGRATION_DATABASE_URL when it is set:
the advisory lock belongs to a session, which a transaction-mode pooler does not keep.
"""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Connection, Engine, text

from alembic import command
from app.config import Settings, get_settings
from app.database import create_migration_engine
from app.logs import configure_logging

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
# An arbitrary constant that names "the todo-api schema migration" among advisory locks.
ADVISORY_LOCK_KEY = 0x70D0A91


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    # env.py uses this connection instead of building its own engine.
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@contextmanager
def migration_lock(settings: Settings, engine: Engine) -> Iterator[Connection]:
    """A connection for schema work, once this process holds the locks. The file lock comes
    first, before connecting: on a new SQLite file the first connections also race to switch
    it to WAL, which SQLite refuses at once rather than waiting for."""
    with FileLock(str(settings.migration_lock_path), timeout=300), engine.connect() as connection:
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


def upgrade_to_head(settings: Settings, engine: Engine) -> bool:
    """Migrate if needed; True if this call did the migrating."""
    with migration_lock(settings, engine) as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        connection.commit()
        if current == head_revision():
            return False
        logger.info("migrating database from %s to head", current or "empty")
        command.upgrade(alembic_config(connection), "head")
        connection.commit()
        return True


def reset_database(settings: Settings, engine: Engine) -> None:
    """Drop everything and rebuild from the migrations (then the caller loads demo data)."""
    if settings.environment == "production":
        raise RuntimeError("RESET_DB is refused when ENVIRONMENT=production")
    with migration_lock(settings, engine) as connection:
        logger.warning("RESET_DB: dropping and rebuilding the schema")
        command.downgrade(alembic_config(connection), "base")
        command.upgrade(alembic_config(connection), "head")
        connection.commit()


def main() -> int:
    """Migrate to head behind the same locks as startup; 0 when the schema is at head."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    engine = create_migration_engine(settings.for_schema_work())
    try:
        migrated = upgrade_to_head(settings, engine)
    except Exception:
        logger.exception("migration failed")
        return 1
    finally:
        engine.dispose()
    logger.info("schema at head %s (%s)", head_revision(), "migrated" if migrated else "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
