"""What recording a change costs per write: the same single-row INSERTs and UPDATEs of todos,
with the change feed's triggers and without them, on PostgreSQL and SQLite.

    .venv/bin/python bench/trigger_cost.py [rows]

PostgreSQL: a plpgsql loop of single-row statements on the server (no round trips in the
figure); SQLite: a loop of single-row statements in one transaction. Each variant runs
three times; the medians are printed, in microseconds per statement.
"""

import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402
from app.migrations import alembic_config  # noqa: E402
from tests.conftest import TempPostgres, postgres_admin_url  # noqa: E402

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
PG_TRIGGERS = ("todos_record_change",)
SQLITE_TRIGGERS = ("todos_record_insert", "todos_record_update")

_PG_LOOP = """DO $$
DECLARE owner uuid := '{owner}'; inbox uuid := '{inbox}'; ids uuid[];
BEGIN
  SELECT array_agg(id) INTO ids FROM (SELECT id FROM todos LIMIT {rows}) AS picked;
  FOR i IN 1..{rows} LOOP
    {statement}
  END LOOP;
END $$"""
_PG_INSERT = (
    "INSERT INTO todos (id, owner_id, list_id, position, title, completed, priority,"
    " created_at, updated_at, version) VALUES (gen_random_uuid(), owner, inbox,"
    " '{prefix}' || lpad(i::text, 10, '0'), 't', false, 1, now(), now(), 1);"
)
_PG_UPDATE = "UPDATE todos SET title = 'u' || i, version = version + 1 WHERE id = ids[i];"


def main() -> None:
    database = TempPostgres.create(postgres_admin_url(), role="trigger_cost")
    try:
        report("postgresql", measure_postgres(create_engine(database.url)))
    finally:
        database.drop()
    with tempfile.TemporaryDirectory() as tmp:
        report("sqlite", measure_sqlite(create_engine(f"sqlite:///{tmp}/cost.db")))


def _migrated(engine: Engine) -> tuple[str, str]:
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
        owner = uuid.uuid4()
        connection.execute(
            text(
                "INSERT INTO users (id, email, hashed_password, is_active, is_superuser,"
                " created_at, updated_at) VALUES (:id, 'cost@example.com', 'x', :t, :f,"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"id": _id(connection, owner), "t": True, "f": False},
        )
        inbox = connection.execute(
            text("SELECT id FROM lists WHERE owner_id = :id"), {"id": _id(connection, owner)}
        ).scalar_one()
    return str(owner), str(inbox)


def _id(connection: Connection, value: uuid.UUID) -> str:
    return value.hex if connection.dialect.name == "sqlite" else str(value)


def measure_postgres(engine: Engine) -> dict[str, dict[str, float]]:
    owner, inbox = _migrated(engine)
    figures: dict[str, dict[str, list[float]]] = {}
    for round_ in range(3):
        for triggers in ("with", "without"):
            action = "ENABLE" if triggers == "with" else "DISABLE"
            with engine.begin() as connection:
                for trigger in PG_TRIGGERS:
                    connection.execute(text(f"ALTER TABLE todos {action} TRIGGER {trigger}"))
            prefix = f"{round_}{int(triggers == 'with')}"
            for name, statement in (
                ("insert", _PG_INSERT.format(prefix=prefix)),
                ("update", _PG_UPDATE),
            ):
                sql = _PG_LOOP.format(owner=owner, inbox=inbox, rows=ROWS, statement=statement)
                figures.setdefault(name, {}).setdefault(triggers, []).append(_timed(engine, sql))
    return _medians(figures)


def _timed(engine: Engine, sql: str) -> float:
    with engine.begin() as connection:
        started = time.perf_counter()
        connection.execute(text(sql))
        return (time.perf_counter() - started) / ROWS * 1e6


def measure_sqlite(engine: Engine) -> dict[str, dict[str, float]]:
    owner, inbox = _migrated(engine)
    figures: dict[str, dict[str, list[float]]] = {}
    with engine.connect() as connection:
        definitions = {
            name: connection.execute(
                text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :n"),
                {"n": name},
            ).scalar_one()
            for name in SQLITE_TRIGGERS
        }
    for round_ in range(3):
        for triggers in ("with", "without"):
            with engine.begin() as connection:
                for name, definition in definitions.items():
                    connection.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
                    if triggers == "with":
                        # As the database holds it: text() would read the stored JSON's
                        # colons (,"deleted":false) as bind parameters.
                        connection.exec_driver_sql(definition)
            ids = [uuid.uuid4().hex for _ in range(ROWS)]
            insert = text(
                "INSERT INTO todos (id, owner_id, list_id, position, title, completed, priority,"
                " created_at, updated_at, version) VALUES (:id, :owner, :inbox, :position, 't',"
                " 0, 1, '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000', 1)"
            )
            update = text("UPDATE todos SET title = :title, version = version + 1 WHERE id = :id")
            prefix = f"{round_}{int(triggers == 'with')}"
            for name, statement, rows in (
                ("insert", insert, [
                    {"id": i, "owner": uuid.UUID(owner).hex, "inbox": uuid.UUID(inbox).hex,
                     "position": f"{prefix}{n:010d}"} for n, i in enumerate(ids)
                ]),
                ("update", update, [{"id": i, "title": f"u{n}"} for n, i in enumerate(ids)]),
            ):  # fmt: skip
                with engine.begin() as connection:
                    started = time.perf_counter()
                    for row in rows:
                        connection.execute(statement, row)
                    elapsed = (time.perf_counter() - started) / ROWS * 1e6
                figures.setdefault(name, {}).setdefault(triggers, []).append(elapsed)
    return _medians(figures)


def _medians(figures: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {
        name: {variant: statistics.median(values) for variant, values in variants.items()}
        for name, variants in figures.items()
    }


def report(database: str, figures: dict[str, dict[str, float]]) -> None:
    for name, variants in figures.items():
        with_, without = variants["with"], variants["without"]
        print(
            f"{database:<11}{name:<7} with triggers {with_:7.1f} us  without {without:7.1f} us"
            f"  cost {with_ - without:6.1f} us per write"
        )


if __name__ == "__main__":
    main()
