"""A labelled list page against a plain one (issue 27): one user with --todos todos, each with
0 to 3 of five common labels (about a third of the todos have each) and a rare label on one
in 200; pages of 20 through the app in process (ASGI, no server), on PostgreSQL and SQLite.

    .venv/bin/python bench/labels_list.py [--todos 10000] [--requests 200]

Prints each query's median and p90 in milliseconds (a rough figure: one process, no
concurrency, on whatever else the machine runs) and the query plans of the labelled page: on
PostgreSQL a common label walks ix_todos_owner_created probing todo_labels' primary key, a
rare one starts from ix_todo_labels_user_key (tests/todos/test_list_plans.py checks both).
docs/adr/0402-labels-denormalised.md records a run.
"""

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from app.config import Settings  # noqa: E402
from app.main import create_app  # noqa: E402
from app.todos import fields, listing_repository  # noqa: E402
from app.todos.models import TodoLabel  # noqa: E402
from bench.lists_10k import RARE, labels_of  # noqa: E402
from tests.conftest import TEST_SECRET, TempPostgres, make_user, postgres_admin_url  # noqa: E402

QUERIES: dict[str, dict[str, Any]] = {
    "plain": {},
    "label=work": {"label": "work"},
    "label=work&label=home": {"label": ["work", "home"]},
    "label=rare": {"label": RARE},
    "label=work&completed=false&sort=-updated_at": {
        "label": "work",
        "completed": "false",
        "sort": "-updated_at",
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--todos", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    database = TempPostgres.create(postgres_admin_url(), role="bench_labels")
    try:
        run("postgresql", database.url, args.todos, args.requests)
    finally:
        database.drop()
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/labels.db", args.todos, args.requests)


def run(name: str, url: str, todos: int, requests: int) -> None:
    print(f"\n{name}: {todos} todos, {requests} requests per query")
    with _client(url) as client:
        user = make_user(client)
        engine = sa.create_engine(url)
        try:
            _populate(engine, uuid.UUID(user.id), todos)
            for label, params in QUERIES.items():
                times = _time(client, user.headers, "/api/v1/todos", params, requests)
                print(f"  {label:48} median {times[0]:6.2f} ms  p90 {times[1]:6.2f} ms")
            times = _time(client, user.headers, "/api/v1/labels", {}, requests)
            print(f"  {'GET /labels':48} median {times[0]:6.2f} ms  p90 {times[1]:6.2f} ms")
            _explain(engine, uuid.UUID(user.id))
        finally:
            engine.dispose()


@contextmanager
def _client(url: str) -> Iterator[TestClient]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,
            environment="test",
            database_url=url,
            secret_key=TEST_SECRET,
            bcrypt_rounds=4,
            rate_limit_enabled=False,
            log_level="WARNING",
            max_todos_per_user=1_000_000,
            migration_lock_path=Path(tmp) / "migrate.lock",
        )
        with TestClient(create_app(settings)) as client:
            yield client


def _populate(engine: sa.Engine, owner: uuid.UUID, count: int) -> None:
    rng = random.Random(27)  # noqa: S311 - the same data every run, no secret
    start = datetime(2026, 1, 1, tzinfo=UTC)
    todos, labels = [], []
    for i in range(count):
        todo_id = uuid.uuid4()
        names = labels_of(rng, i)
        at = start + timedelta(seconds=i)
        todos.append(
            {
                "id": todo_id,
                "owner_id": owner,
                "title": f"todo {i}",
                "completed": i % 3 == 0,
                "priority": i % 3,
                "created_at": at,
                "updated_at": at,
                "version": 1,
                "labels": names,
            }
        )
        labels += [
            {"todo_id": todo_id, "name_key": n.casefold(), "user_id": owner, "name": n}
            for n in names
        ]
    with engine.begin() as connection:  # list_id and position: the lists migration's trigger
        connection.execute(sa.insert(fields.TABLE), todos)
        connection.execute(sa.insert(TodoLabel.__table__), labels)
        if engine.dialect.name == "postgresql":
            connection.execute(sa.text("ANALYZE"))


def _time(
    client: TestClient, headers: dict[str, str], path: str, params: dict[str, Any], n: int
) -> tuple[float, float]:
    for _ in range(10):  # warm: connections, statement caches
        assert client.get(path, params=params, headers=headers).status_code == 200
    times = []
    for _ in range(n):
        began = time.perf_counter()
        response = client.get(path, params=params, headers=headers)
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, response.text
    return statistics.median(times), statistics.quantiles(times, n=10)[-1]


def _explain(engine: sa.Engine, owner: uuid.UUID) -> None:
    """The plan of the list's own statement, run as EXPLAIN on the driver's cursor."""
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    plans: list[Any] = []

    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        cursor.execute(prefix + statement, parameters)
        plans.append(cursor.fetchall())

    stmt = listing_repository.list_statement("-created_at", None, frozenset({"label_0"}))
    sa.event.listen(engine, "before_cursor_execute", explain)
    try:
        for label in ("work", RARE):
            params = {"user_id": owner, "generation": 0, "limit": 21, "label_0": label}
            with engine.connect() as connection:
                connection.execute(stmt, params).all()
            print(f"  plan, label={label}:")
            for row in plans.pop():
                print("    " + str(row[-1]))
    finally:
        sa.event.remove(engine, "before_cursor_execute", explain)


if __name__ == "__main__":
    main()
