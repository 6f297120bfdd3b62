"""What the change notification costs writers: one-row todo INSERTs from concurrent pgbench
clients (each its own user, so they contend only where the database makes them), with the
recording trigger in four versions:

- none: no notification (the function as b24e6a0f3c71 left it);
- always: pg_notify on every change (e5c1d7a93b42);
- unwatched: 8b3f0d6c2e15, nobody waits (the owner's lock and a look at change_waiters);
- watched: 8b3f0d6c2e15, every client's user has a waiter (so every write notifies);
- unlocked: unwatched without the owner's advisory lock (not safe: it shows the lock's share).

    .venv/bin/python bench/notify_cost.py [clients] [seconds] [rounds]

Each version runs `rounds` times, interleaved; the medians are printed in transactions/s.
"""

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from sqlalchemy import Engine, create_engine, make_url, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402
from app.migrations import alembic_config  # noqa: E402
from tests.conftest import TempPostgres, postgres_admin_url  # noqa: E402

CLIENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 16
SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
VERSIONS = ("none", "always", "unwatched", "watched", "unlocked")
# pgbench numbers its clients from 0: client i writes as bench user i.
INSERT = """\\set u :client_id + 1
INSERT INTO todos (id, owner_id, list_id, position, title, completed, priority, created_at,
                   updated_at, version)
SELECT gen_random_uuid(), u.id, l.id, lpad(CAST(nextval('bench_position') AS text), 10, '0'),
       't', false, 1, now(), now(), 1
FROM bench_users u JOIN lists l ON l.owner_id = u.id WHERE u.n = :u;
"""


def _migration(revision: str) -> ModuleType:
    (path,) = (ROOT / "alembic" / "versions").glob(f"*-{revision}_*.py")
    spec = importlib.util.spec_from_file_location(f"_bench_{revision}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _functions() -> dict[str, str]:
    documents, waited = _migration("cd0b552f17fe"), _migration("8b3f0d6c2e15")
    plain: str = documents._pg_record_change(with_document=False)
    end = waited._END
    always = "\n    PERFORM pg_notify('todo_changes', CAST(owner AS text));"
    lock = next(line for line in waited._NOTIFY_WAITED.splitlines() if "advisory" in line)
    unlocked = waited._NOTIFY_WAITED.replace(lock + "\n", "")
    return {
        "none": plain,
        "always": plain.replace(end, always + end),
        "unwatched": plain.replace(end, waited._NOTIFY_WAITED + end),
        "watched": plain.replace(end, waited._NOTIFY_WAITED + end),
        "unlocked": plain.replace(end, unlocked + end),
    }


def _prepare(engine: Engine) -> None:
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
        connection.execute(text("CREATE SEQUENCE bench_position"))
        connection.execute(
            text(
                "CREATE TABLE bench_users AS SELECT n, gen_random_uuid() AS id"
                " FROM generate_series(1, :clients) AS n"
            ),
            {"clients": CLIENTS},
        )
        connection.execute(
            text(
                "INSERT INTO users (id, email, hashed_password, is_active, is_superuser,"
                " created_at, updated_at) SELECT id, 'bench' || n || '@example.com', 'x',"
                " true, false, now(), now() FROM bench_users"
            )
        )


def _use(engine: Engine, version: str, function: str) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql(function)
        connection.execute(text("DELETE FROM change_waiters"))
        if version == "watched":
            connection.execute(
                text(
                    "INSERT INTO change_waiters SELECT gen_random_uuid(), id,"
                    " now() + interval '1 hour' FROM bench_users"
                )
            )


def _pgbench(url: str, script: Path) -> float:
    target = make_url(url)
    env = {**os.environ, "PGPASSWORD": target.password or ""}
    args = ["pgbench", "-n", "-c", str(CLIENTS), "-j", "2", "-T", str(SECONDS), "-f", str(script)]
    args += ["-h", target.host or "127.0.0.1", "-p", str(target.port or 5432)]
    args += ["-U", target.username or "postgres", target.database or ""]
    run = subprocess.run(args, env=env, check=True, capture_output=True, text=True)  # noqa: S603
    out = run.stdout
    (line,) = [line for line in out.splitlines() if line.startswith("tps")]
    return float(line.split("=")[1].split()[0])


def main() -> None:
    database = TempPostgres.create(postgres_admin_url(), role="notify_cost")
    engine = create_engine(database.url)
    try:
        _prepare(engine)
        functions = _functions()
        figures: dict[str, list[float]] = {version: [] for version in VERSIONS}
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "insert.sql"
            script.write_text(INSERT)
            for _ in range(ROUNDS):
                for version in VERSIONS:
                    _use(engine, version, functions[version])
                    figures[version].append(_pgbench(database.url, script))
        print(f"one-row todo INSERTs, {CLIENTS} clients, {SECONDS} s x {ROUNDS} (median tps)")
        for version, tps in figures.items():
            runs = ", ".join(f"{t:.0f}" for t in tps)
            print(f"{version:>10}: {statistics.median(tps):8.0f}   ({runs})")
    finally:
        engine.dispose()
        database.drop()


if __name__ == "__main__":
    main()
