"""Alembic environment: runs on the app's connection at startup, or builds one from settings."""

from logging.config import fileConfig

from sqlalchemy import Connection

from alembic import context
from app.config import get_settings
from app.engines import create_migration_engine
from app.migration_guard import FINGERPRINT_TABLE
from app.models import Base
from app.schema_compare import include_object

config = context.config
target_metadata = Base.metadata


def _ours(name: str | None, type_: str, parent_names: object) -> bool:
    # Development's migration fingerprints (app.migration_guard) are no model's table.
    return not (type_ == "table" and name == FINGERPRINT_TABLE)


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=_ours,
        include_object=include_object(connection.dialect.name),
        # No batch mode, on SQLite either: a batch copies the table and the copy has none of
        # the original's triggers (the change feed's recording, account usage, the list fill),
        # silently (issue 24: a field's downgrade lost them). SQLite adds, drops and renames
        # columns in place (3.35+); a change it cannot make in place needs a hand-written
        # migration that re-creates the table's triggers (docs/adding-a-field.md).
        render_as_batch=False,
        compare_type=True,
        # Our SQLite connections run real transactions (see app.database), so DDL rolls back too.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # called from app.migrations, which holds the locks
        run_on(connection)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    engine = create_migration_engine(get_settings().for_schema_work())
    try:
        with engine.connect() as connection:
            run_on(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Offline (--sql) migrations are not supported; run against a database.")
run_online()
