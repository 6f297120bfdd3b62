"""Every write answers with what the database stored, not with what the request asked for.

A write's response is the row its own INSERT ... RETURNING or UPDATE ... RETURNING gave back,
so a value the statement forgot to store cannot show up in the response as if it had been
(issue 18: a column missing from the todo INSERT used to come back from the request's values,
in a 201, while nothing was saved). Each write is compared with a GET of the same object that
follows it, server-assigned fields (id, position, created_at, updated_at, completed_at, the
ETag) included, on SQLite and PostgreSQL.
"""

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from app.todos import fields, repository
from app.todos.schemas import TodoCreate
from tests.conftest import ApiUser
from tests.lists.helpers import create_list, create_todo

# Every writable field with a value other than its default (a new field belongs here too: the
# test below insists, and then checks that a create and a PUT store it).
FULL_TODO = {
    "title": "Write report",
    "description": "Quarterly numbers",
    "completed": True,
    "priority": "high",
    "due_date": "2031-05-06T07:08:09Z",
    "labels": ["Work", "urgent"],
    "time_zone": "Europe/Berlin",
    "remind_at": "2031-05-06T06:00:00Z",
    # Its only occurrence is the due: a PUT with completed true completes it (API.md v1.3).
    "recurrence": "FREQ=DAILY;COUNT=1",
}
# A todo has one of due_date and due_day (issue 27): the other writable fields, all-day.
FULL_ALL_DAY_TODO = {
    **{name: value for name, value in FULL_TODO.items() if name != "due_date"},
    "due_day": "2031-05-06",
}


def assert_as_stored(client: TestClient, user: ApiUser, response: httpx2.Response) -> None:
    """The response of a write is the object a GET returns right after it, ETag included."""
    assert response.status_code in (200, 201), response.text
    body = response.json()
    kind = "todos" if "title" in body else "lists"
    stored = client.get(f"/api/v1/{kind}/{body['id']}", headers=user.headers)
    assert stored.status_code == 200, stored.text
    assert body == stored.json()
    assert response.headers["etag"] == stored.headers["etag"]


def _todo_writes(client: TestClient, user: ApiUser) -> Iterator[httpx2.Response]:
    h = user.headers
    yield client.post("/api/v1/todos", json=FULL_TODO, headers=h)
    yield client.post("/api/v1/todos", json={"title": "defaults only"}, headers=h)
    key = {**h, "Idempotency-Key": uuid.uuid4().hex}
    yield client.post("/api/v1/todos", json=FULL_TODO, headers=key)
    yield client.post("/api/v1/todos", json=FULL_TODO, headers=key)  # the replay
    todo = create_todo(client, user)
    other = create_list(client, user, "Other")
    url = f"/api/v1/todos/{todo['id']}"
    yield client.patch(url, json={"completed": True, "priority": "low"}, headers=h)
    yield client.patch(url, json={"completed": True}, headers=h)  # changes nothing
    etag = client.get(url, headers=h).headers["etag"]
    yield client.put(url, json=FULL_TODO, headers={**h, "If-Match": etag})
    yield client.patch(url, json={"list_id": other["id"]}, headers=h)  # to another list
    yield client.patch(
        url, json={"labels": [" home ", "Work"], "list_id": todo["list_id"]}, headers=h
    )
    yield client.post(f"{url}/move", json={"after": None}, headers=h)


def _list_writes(client: TestClient, user: ApiUser) -> Iterator[httpx2.Response]:
    h = user.headers
    first = client.post("/api/v1/lists", json={"name": "Work"}, headers=h)
    yield first
    second = client.post("/api/v1/lists", json={"name": "Home"}, headers=h)
    yield second
    url = f"/api/v1/lists/{first.json()['id']}"
    etag = first.headers["etag"]
    yield client.patch(url, json={"name": "Office"}, headers={**h, "If-Match": etag})
    yield client.patch(url, json={"name": "Office"}, headers=h)  # changes nothing
    yield client.post(f"{url}/move", json={"after": second.json()["id"]}, headers=h)


@pytest.mark.parametrize("writes", [_todo_writes, _list_writes], ids=["todos", "lists"])
def test_every_write_answers_with_the_stored_object(
    client: TestClient,
    user: ApiUser,
    writes: Callable[[TestClient, ApiUser], Iterator[httpx2.Response]],
) -> None:
    for response in writes(client, user):
        assert_as_stored(client, user, response)


def _as_sent(body: dict[str, Any], full: dict[str, Any]) -> dict[str, Any]:
    """The response's values of the fields `full` sends, datetimes as instants."""
    values = {name: body[name] for name in full}
    for name, value in values.items():
        if isinstance(full[name], str) and full[name].endswith("Z"):
            values[name] = datetime.fromisoformat(value)
    return values


def test_the_full_bodies_hold_every_writable_field() -> None:
    # parent_id names another todo, so it has tests of its own (tests/todos/test_subtasks.py).
    written = set(TodoCreate.model_fields) - {"list_id", "id", "parent_id"}
    assert set(FULL_TODO) | set(FULL_ALL_DAY_TODO) == written


@pytest.mark.parametrize("full", [FULL_TODO, FULL_ALL_DAY_TODO], ids=["due_date", "due_day"])
def test_every_writable_field_is_stored_by_a_create_and_a_put(
    client: TestClient, user: ApiUser, full: dict[str, Any]
) -> None:
    sent = _as_sent(full, full)
    created = client.post("/api/v1/todos", json=full, headers=user.headers)
    assert_as_stored(client, user, created)
    assert _as_sent(created.json(), full) == sent
    plain = create_todo(client, user)
    replaced = client.put(f"/api/v1/todos/{plain['id']}", json=full, headers=user.headers)
    assert_as_stored(client, user, replaced)
    assert _as_sent(replaced.json(), full) == sent


@pytest.fixture
def description_not_inserted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The todo INSERT with one column left out, as a forgotten column would leave it."""
    monkeypatch.setattr(fields, "INSERTED", tuple(c for c in fields.INSERTED if c != "description"))
    repository._insert_statement.cache_clear()
    yield
    repository._insert_statement.cache_clear()


@pytest.mark.usefixtures("description_not_inserted")
def test_a_column_left_out_of_the_insert_is_not_in_the_response(
    client: TestClient, user: ApiUser
) -> None:
    response = client.post("/api/v1/todos", json=FULL_TODO, headers=user.headers)
    assert response.status_code == 201, response.text
    # Nothing stored the description: the 201 must not claim otherwise.
    assert response.json()["description"] is None
    assert_as_stored(client, user, response)


@contextmanager
def statements_run(client: TestClient) -> Iterator[list[str]]:
    """The SQL statements the app's engine sends while the block runs (one each way)."""
    engine = client.app.state.engine.sync_engine  # type: ignore[attr-defined]
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])  # (conn, cursor, statement, parameters, context, executemany)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_create_is_still_one_statement(client: TestClient, user: ApiUser) -> None:
    """RETURNING the stored row is part of the INSERT: no second round trip to read it."""
    client.post("/api/v1/todos", json={"title": "warm"}, headers=user.headers)  # a connection
    unlabelled = {**FULL_TODO, "labels": []}
    with statements_run(client) as sent:
        response = client.post("/api/v1/todos", json=unlabelled, headers=user.headers)
    assert response.status_code == 201, response.text
    assert len(sent) == 1, sent
    assert sent[0].lstrip().upper().startswith("INSERT INTO TODOS")


def test_a_labelled_create_indexes_its_labels_in_the_same_transaction(
    client: TestClient, user: ApiUser
) -> None:
    """todos.labels and todo_labels commit together (app.todos.labels_repository): the todo's
    INSERT, then one executemany for its labels, after the transaction's BEGIN."""
    client.post("/api/v1/todos", json={"title": "warm"}, headers=user.headers)  # a connection
    with statements_run(client) as sent:
        response = client.post("/api/v1/todos", json=FULL_TODO, headers=user.headers)
    assert response.status_code == 201, response.text
    writes = [s.lstrip().upper() for s in sent if not s.lstrip().upper().startswith("BEGIN")]
    assert [w.split("(")[0].strip() for w in writes] == [
        "INSERT INTO TODOS",
        "INSERT INTO TODO_LABELS",
    ], sent
