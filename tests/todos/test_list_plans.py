"""PostgreSQL's plans for the list pages of a user with a few thousand todos, labelled and
with subtasks as bench/run.py's list_*_10k user (bench/lists_10k.py): each page goes through
the index meant for it (models.py, docs/adr/0402-labels-denormalised.md) and stops after a
page, rather than reading and sorting all of the user's todos (issue 27: a labelled and a
parent_id= page within 2x a plain one)."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from app.config import Settings
from app.engines import create_migration_engine
from app.migrations import upgrade_to_head
from app.todos.listing_repository import list_statement
from bench import lists_10k
from tests.conftest import TempPostgres, postgres_admin_url

pytestmark = pytest.mark.postgres  # the module's own database, made by its fixture
TODOS = 3_000


class Seeded:
    def __init__(self, engine: Engine, owner: uuid.UUID, parent: uuid.UUID) -> None:
        self.engine, self.owner, self.parent = engine, owner, parent


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    database = TempPostgres.create(postgres_admin_url(), role="plans")
    lock = Path(tmp_path_factory.mktemp("plans")) / "migrate.lock"
    settings = Settings(_env_file=None, database_url=database.url, migration_lock_path=lock)
    engine = sa.create_engine(database.url)
    try:
        migrator = create_migration_engine(settings)
        try:
            upgrade_to_head(settings, migrator)
        finally:
            migrator.dispose()
        metadata = sa.MetaData()
        tables = tuple(
            sa.Table(name, metadata, autoload_with=engine)
            for name in ("users", "todos", "todo_labels")
        )
        now = datetime.now(UTC)
        owner = uuid.uuid4()
        user = {"id": owner, "email": "plans@example.com", "hashed_password": "x",
                "is_active": True, "is_superuser": False, "created_at": now,
                "updated_at": now}  # fmt: skip
        todos, labels, parents = lists_10k.rows(owner, TODOS, now)
        with engine.begin() as connection:
            lists_10k.insert_user(connection, tables, user, todos, labels)  # type: ignore[arg-type]
            connection.execute(sa.text("ANALYZE"))
        yield Seeded(engine, owner, parents[len(parents) // 2])
    finally:
        engine.dispose()
        database.drop()


def _plan(seeded: Seeded, sort: str, filters: dict[str, Any]) -> str:
    """The plan of the list's own statement for a first page of 20, as EXPLAIN on the
    driver's cursor (the parameters bound as the app binds them)."""
    plans: list[str] = []

    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        cursor.execute("EXPLAIN " + statement, parameters)
        plans.append("\n".join(row[0] for row in cursor.fetchall()))

    params = {"user_id": seeded.owner, "generation": 0, "limit": 21, **filters}
    statement = list_statement(sort, None, frozenset(filters))
    with seeded.engine.connect() as connection:
        sa.event.listen(connection, "before_cursor_execute", explain)
        connection.execute(statement, params).all()
    return plans[0]


def _assert_walks(plan: str, index: str) -> None:
    assert index in plan, plan
    # Neither a scan of the whole table nor a sort of the user's todos: a page, read in order.
    assert "Seq Scan on todos" not in plan, plan
    assert "Sort" not in plan, plan


def test_the_plain_page_walks_the_sort_index(seeded: Seeded) -> None:
    _assert_walks(_plan(seeded, "-created_at", {}), "ix_todos_owner_created")


def test_a_common_label_walks_the_sort_index_probing_the_labels_key(seeded: Seeded) -> None:
    # A third of the todos have it: the sort index meets a page of them within a few dozen
    # steps, each a probe of todo_labels' primary key (ADR 0402).
    plan = _plan(seeded, "-created_at", {"label_0": "work"})
    _assert_walks(plan, "ix_todos_owner_created")
    assert "pk_todo_labels" in plan or "ix_todo_labels_user_key" in plan, plan


def test_a_rare_label_starts_from_the_label_index(seeded: Seeded) -> None:
    # One todo in 200: its few rows are read from the label index, then sorted.
    plan = _plan(seeded, "-created_at", {"label_0": lists_10k.RARE})
    assert "ix_todo_labels_user_key" in plan, plan
    assert "Seq Scan on todos" not in plan, plan


def test_a_parent_s_subtasks_are_read_from_the_parent_index(seeded: Seeded) -> None:
    # parent_id= sorts by position unless told otherwise: the index's own order.
    plan = _plan(seeded, "position", {"parent_id": seeded.parent})
    _assert_walks(plan, "ix_todos_owner_parent_position")


def test_the_top_level_page_walks_the_sort_index(seeded: Seeded) -> None:
    _assert_walks(_plan(seeded, "-created_at", {"top_level": True}), "ix_todos_owner_created")
