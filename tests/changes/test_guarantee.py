"""The feed's guarantee under adversity, on PostgreSQL: writers whose transactions commit out
of order, while a reader polls. The feed's reader ends with exactly the database's state; a
naive "changed_at > since" reader of the very same writes does not (so the scenario does
provoke the failure the feed's design avoids)."""

import itertools
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, bindparam, delete, insert, select, text, update

from app.database import utcnow
from app.lists.models import TodoList
from app.models import Todo
from tests.changes.helpers import Replica, server_state
from tests.conftest import ApiUser

WRITERS = 4
OPERATIONS = 18
HOLD_SECONDS = 0.4  # a held transaction stays open this long after its write


@pytest.fixture
def postgres_only(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("out-of-order commits need concurrent writers: PostgreSQL")


def todos_of(state: dict[tuple[str, str], dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {
        key[1]: (item["title"], item["updated_at"])
        for key, item in state.items()
        if key[0] == "todo"
    }


class Writers:
    """Threads writing todos over their own connections, as the API's statements do; every
    third write of the first two writers holds its transaction open for HOLD_SECONDS, so
    writes that began after it commit before it."""

    def __init__(self, engine: Engine, owner: uuid.UUID, list_id: uuid.UUID) -> None:
        self.engine, self.owner, self.list_id = engine, owner, list_id
        self._positions = itertools.count(1000)
        self._lock = threading.Lock()
        self.errors: list[BaseException] = []

    def run(self) -> None:
        threads = [threading.Thread(target=self._writer, args=(n,)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    def _writer(self, n: int) -> None:
        rng = random.Random(n)
        mine: list[uuid.UUID] = []
        try:
            for i in range(OPERATIONS):
                hold = n < 2 and i % 3 == 1
                with self.engine.begin() as connection:
                    self._operation(connection, rng, mine, f"w{n}-{i}")
                    if hold:
                        time.sleep(HOLD_SECONDS)
                time.sleep(rng.uniform(0, 0.03))
        except BaseException as exc:
            self.errors.append(exc)

    def _operation(
        self, connection: Any, rng: random.Random, mine: list[uuid.UUID], title: str
    ) -> None:
        now = utcnow()
        choice = rng.random() if len(mine) > 2 else 0
        if choice < 0.5:
            with self._lock:
                position = f"{next(self._positions):010d}"
            todo_id = uuid.uuid4()
            connection.execute(
                insert(Todo).values(
                    id=todo_id, owner_id=self.owner, list_id=self.list_id, position=position,
                    title=title, completed=False, priority=1, created_at=now, updated_at=now,
                    version=1,
                )
            )  # fmt: skip
            mine.append(todo_id)
        elif choice < 0.85:
            connection.execute(
                update(Todo)
                .where(Todo.id == rng.choice(mine))
                .values(title=title, updated_at=now, version=Todo.version + 1)
            )
        else:
            connection.execute(delete(Todo).where(Todo.id == mine.pop(rng.randrange(len(mine)))))


def poll_while(writers: Writers, poll: Callable[[], None]) -> None:
    done = threading.Event()

    def write() -> None:
        writers.run()
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    while not done.is_set():
        poll()
        time.sleep(0.02)
    thread.join()
    assert writers.errors == []
    poll()  # once everything has committed: a client that polls again is up to date


def _inbox(engine: Engine, user: ApiUser) -> uuid.UUID:
    with engine.connect() as connection:
        stmt = select(TodoList.id).where(
            TodoList.owner_id == uuid.UUID(user.id), TodoList.is_default
        )
        return connection.execute(stmt).scalar_one()


@pytest.mark.usefixtures("postgres_only")
def test_the_feed_misses_nothing_when_transactions_commit_out_of_order(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    writers = Writers(db_engine, uuid.UUID(user.id), _inbox(db_engine, user))
    replica = Replica(user)
    poll_while(writers, lambda: replica.sync(client, limit=7))
    assert todos_of(replica.objects) == todos_of(server_state(client, user))
    assert len(todos_of(replica.objects)) > 10


_NAIVE = text(
    "SELECT c.object_id, c.changed_at, t.title, t.updated_at FROM changes c"
    " LEFT JOIN todos t ON t.id = c.object_id"
    " WHERE c.owner_id = :owner AND c.kind = 'todo' AND c.changed_at > :since"
    " ORDER BY c.changed_at"
).bindparams(bindparam("since"))


class NaiveReader:
    """The classic feed: everything stamped later than the latest stamp seen so far."""

    def __init__(self, engine: Engine, owner: uuid.UUID) -> None:
        self.engine, self.owner = engine, owner
        self.since = utcnow().replace(year=2000)
        self.todos: dict[str, tuple[str, str]] = {}

    def poll(self) -> None:
        with self.engine.connect() as connection:
            rows = connection.execute(_NAIVE, {"owner": self.owner, "since": self.since}).all()
        for row in rows:
            key = str(row.object_id)
            if row.title is None:
                self.todos.pop(key, None)
            else:
                self.todos[key] = (row.title, row.updated_at)
            self.since = max(self.since, row.changed_at)


@pytest.mark.usefixtures("postgres_only")
def test_a_naive_changed_since_feed_of_the_same_writes_misses_late_commits(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    writers = Writers(db_engine, uuid.UUID(user.id), _inbox(db_engine, user))
    naive = NaiveReader(db_engine, uuid.UUID(user.id))
    poll_while(writers, naive.poll)
    with db_engine.connect() as connection:
        rows = connection.execute(
            select(Todo.id, Todo.title, Todo.updated_at).where(Todo.owner_id == uuid.UUID(user.id))
        ).all()
    actual = {str(row.id): (row.title, row.updated_at) for row in rows}
    # The naive reader reads the same change rows, by time instead of by watermark: a
    # transaction that took its time first and committed last is behind it for ever.
    assert naive.todos != actual
