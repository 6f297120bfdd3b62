"""The feed's items are written from the rows the page joins (app.changes.repository), the routes'
by pydantic: for the same data they must be the same JSON, on both databases. Each backend's
feed is compared with GET of every object there; GET's format does not depend on the
backend, so this also holds the two databases' feeds to the same format."""

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from app.lists.models import TodoList
from app.todos.models import Todo
from tests.changes.helpers import feed, page
from tests.conftest import ApiUser
from tests.lists.helpers import create_list, create_todo

# Everything JSON must escape, and what it must not: quotes, backslashes, control characters
# (the short escapes and the \u00XX ones), DEL, non-ASCII in and out of the BMP, a slash.
AWKWARD = 'a "quoted" \\ back\\slash\n\t\r\b\f \x01\x1f\x7f é ñ 中文 🎉 </script> \u2028'

# Timestamps in every shape pydantic writes: a full fraction, trailing zeros in it, none, and
# the first and last instants a date-time can hold.
DUE_DATES = [
    "2030-01-02T03:04:05.123456Z",
    "2030-01-02T03:04:05.120000Z",
    "2030-01-02T03:04:05.000001Z",
    "2030-01-02T03:04:05Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    None,
]


def _get(client: TestClient, user: ApiUser, kind: str, object_id: str) -> Any:
    response = client.get(f"/api/v1/{kind}s/{object_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


def _every_change(client: TestClient, user: ApiUser, limit: int) -> list[dict[str, Any]]:
    changes, token = [], None
    while True:
        body = page(client, user, token, limit)
        changes += body["changes"]
        token = body["next_token"]
        if not body["has_more"]:
            return changes


@pytest.mark.parametrize("limit", [100, 4])  # one page, and pages split in the aggregate
def test_every_item_is_what_get_returns_for_it(
    client: TestClient, user: ApiUser, db_engine: Engine, limit: int
) -> None:
    work = create_list(client, user, name=AWKWARD.strip())
    todos = [
        create_todo(
            client,
            user,
            title=f"{AWKWARD.strip()} {i}",
            description=None if i % 3 == 0 else AWKWARD,
            priority=("low", "normal", "high")[i % 3],
            due_date=due_date,
            completed=i % 2 == 1,  # completed_at set
            **({"list_id": work["id"]} if i % 2 else {}),
        )
        for i, due_date in enumerate(DUE_DATES)
    ]
    gone = create_todo(client, user, title="gone")
    assert client.delete(f"/api/v1/todos/{gone['id']}", headers=user.headers).status_code == 204
    # Times the server wrote with no fraction at all, and one at the very end of a second.
    with db_engine.begin() as connection:
        whole = datetime(2026, 1, 1, tzinfo=UTC)
        connection.execute(
            update(Todo)
            .where(Todo.id == uuid.UUID(todos[0]["id"]))
            .values(created_at=whole, updated_at=whole.replace(microsecond=999_999))
        )
        connection.execute(
            update(TodoList).where(TodoList.id == uuid.UUID(work["id"])).values(updated_at=whole)
        )

    changes = _every_change(client, user, limit)
    assert len(changes) == len({c["id"] for c in changes}) == 1 + 1 + len(todos) + 1
    for change in changes:
        assert set(change) == {"type", "id", "deleted", "item"}
        if change["id"] == gone["id"]:
            assert change == {"type": "todo", "id": gone["id"], "deleted": True, "item": None}
            continue
        assert change["deleted"] is False, change
        expected = _get(client, user, change["type"], change["id"])
        assert change["item"] == expected
    items = {c["id"]: c["item"] for c in changes}
    assert items[todos[0]["id"]]["created_at"] == "2026-01-01T00:00:00Z"
    assert items[todos[0]["id"]]["updated_at"] == "2026-01-01T00:00:00.999999Z"
    assert items[work["id"]]["updated_at"] == "2026-01-01T00:00:00Z"
    assert [items[t["id"]]["due_date"] for t in todos] == DUE_DATES


def test_a_change_the_database_cannot_write_is_an_error_not_a_deletion(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    """A todo without a position (a column nullable only while the release before this one
    runs) has no JSON the contract allows: a client told it was deleted would drop it."""
    todo = create_todo(client, user)
    with db_engine.begin() as connection:
        connection.execute(
            update(Todo).where(Todo.id == uuid.UUID(todo["id"])).values(position=None)
        )
    assert feed(client, user, None).status_code == 500
