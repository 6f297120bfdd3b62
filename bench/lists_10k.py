"""The rows of a user with many todos, labelled and with subtasks: bench/run.py's list_*_10k
scenarios (issue 27: a labelled page and a parent_id= page within 2x a plain page of 20).

Labels are spread as bench/labels_list.py spreads them (0 to 3 of five common ones, so about
a third of the todos have each, and a rare one on one todo in 200). Every SUBTASK_GROUP-th
todo is a parent with SUBTASKS subtasks created just after it, in the same list (the Inbox).
Every todo has a position of its own in the list, as the service keeps them.
"""

import random
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert, inspect, text

# The wrk scenarios (bench/wrk/scenario.lua), each a page of 20 of this user's todos: plain,
# label=work (a common label), parent_id= (one parent's 8 subtasks, as a client opening a todo
# asks; issue 27 names it) and top_level=true (what a client showing subtasks under their
# parents asks for its main list; it walks the plain page's index, filtering subtasks out).
SCENARIOS = ("list_plain_10k", "list_labelled_10k", "list_parent_10k", "list_top_level_10k")
PLAIN = SCENARIOS[0]
TARGET = 2.0  # issue 27: the labelled and the parent pages within 2x the plain one
TODOS = 10_000
COMMON = ["Work", "home", "Errands", "urgent", "someday"]
RARE = "rare"
SUBTASK_GROUP, SUBTASKS = 25, 8  # 400 parents of 8 in 10,000: 3,200 subtasks


def labels_of(rng: random.Random, i: int) -> list[str]:
    """The i-th todo's labels: the same for the same seed in every run."""
    return rng.sample(COMMON, rng.randint(0, 3)) + ([RARE] if i % 200 == 0 else [])


def rows(
    owner: uuid.UUID, count: int, newest: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[uuid.UUID]]:
    """The todos (each parent before its subtasks, for the foreign key; insert_user puts them
    in the user's Inbox), their todo_labels rows, and the parents' ids."""
    rng = random.Random(27)  # noqa: S311 - the same data every run, no secret
    todos: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    parents: list[uuid.UUID] = []
    parent: uuid.UUID | None = None
    for i in range(count):
        todo_id = uuid.uuid4()
        if i % SUBTASK_GROUP == 0:
            parent = todo_id
            parents.append(todo_id)
        names = labels_of(rng, i)
        at = newest - timedelta(seconds=count - i)  # the newest last: a page shows the end
        todos.append(
            {"id": todo_id, "owner_id": owner, "title": f"todo {i}",
             "completed": i % 3 == 0 and todo_id != parent, "priority": i % 3,
             "created_at": at, "updated_at": at, "version": 1, "labels": names,
             "position": f"{i + 1:010d}",
             "parent_id": parent if 0 < i % SUBTASK_GROUP <= SUBTASKS else None}
        )  # fmt: skip
        labels += [
            {"todo_id": todo_id, "name_key": n.casefold(), "user_id": owner, "name": n}
            for n in names
        ]
    return todos, labels, parents


def has_schema(engine: Engine) -> bool:
    """Whether the database's schema has labels and subtasks (a baseline may predate them)."""
    inspector = inspect(engine)
    columns = {column["name"] for column in inspector.get_columns("todos")}
    return inspector.has_table("todo_labels") and {"labels", "parent_id"} <= columns


def insert_user(
    connection: Connection,
    tables: tuple[Table, Table, Table],
    user: dict[str, Any],
    todos: list[dict[str, Any]],
    labels: list[dict[str, Any]],
) -> None:
    """The user (tables: users, todos, todo_labels), their todos (rows()) into their Inbox
    (which the database's trigger made), and the labels' rows, in bulk."""
    users_table, todos_table, labels_table = tables
    connection.execute(insert(users_table), [user])
    inbox = connection.execute(
        text("SELECT id FROM lists WHERE owner_id = :owner"), {"owner": user["id"]}
    ).scalar_one()
    connection.execute(insert(todos_table), [todo | {"list_id": inbox} for todo in todos])
    connection.execute(insert(labels_table), labels)


def versus_plain(scenarios: dict[str, Any]) -> dict[str, Any]:
    """The labelled and the parent page as a multiple of the plain page's cost (its req/s
    over theirs, at the same concurrency), against the target."""
    if PLAIN not in scenarios:
        return {}
    plain = scenarios[PLAIN]["rps"]
    multiples = {}
    for name in SCENARIOS[1:]:
        if name in scenarios:
            times = round(plain / scenarios[name]["rps"], 3)
            multiples[name] = {"x_plain": times, "within_target": times <= TARGET}
    return multiples
