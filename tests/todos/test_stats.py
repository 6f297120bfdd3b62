"""GET /api/v1/todos/stats: total, completed, open, and overdue (open, due date in the past)."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ApiUser

ZERO = {"total": 0, "completed": 0, "open": 0, "overdue": 0}


def create(client: TestClient, user: ApiUser, **fields: Any) -> str:
    response = client.post("/api/v1/todos", json={"title": "Task", **fields}, headers=user.headers)
    assert response.status_code == 201, response.text
    todo_id: str = response.json()["id"]
    return todo_id


def stats(client: TestClient, user: ApiUser) -> dict[str, int]:
    response = client.get("/api/v1/todos/stats", headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, int] = response.json()
    assert set(body) == set(ZERO)
    return body


def patch(client: TestClient, user: ApiUser, todo_id: str, **fields: Any) -> None:
    response = client.patch(f"/api/v1/todos/{todo_id}", json=fields, headers=user.headers)
    assert response.status_code == 200, response.text


@dataclass(frozen=True)
class FromNow:
    """A due date relative to when the test runs, written in the given UTC offset."""

    delta: timedelta
    offset_hours: int = 0

    def isoformat(self) -> str:
        offset = timezone(timedelta(hours=self.offset_hours))
        return (datetime.now(UTC) + self.delta).astimezone(offset).isoformat()


def test_user_without_todos_has_all_zeros(client: TestClient, user: ApiUser) -> None:
    assert stats(client, user) == ZERO


def test_total_completed_and_open(client: TestClient, user: ApiUser) -> None:
    for _ in range(3):
        create(client, user)
    for _ in range(2):
        create(client, user, completed=True)

    assert stats(client, user) == {"total": 5, "completed": 2, "open": 3, "overdue": 0}


def test_stats_count_every_todo_not_one_page(client: TestClient, user: ApiUser) -> None:
    for n in range(25):  # more than the list's default page of 20
        create(client, user, completed=n % 5 == 0)

    assert stats(client, user) == {"total": 25, "completed": 5, "open": 20, "overdue": 0}


@pytest.mark.parametrize(
    ("fields", "overdue"),
    [
        pytest.param({"due_date": "2000-01-01T00:00:00Z"}, 1, id="open-past"),
        pytest.param({"due_date": "2000-01-01T00:00:00"}, 1, id="open-past-naive"),
        pytest.param({"due_date": FromNow(-timedelta(minutes=1))}, 1, id="open-minute-ago"),
        pytest.param({"completed": True, "due_date": "2000-01-01T00:00:00Z"}, 0, id="done-past"),
        pytest.param({"due_date": "2999-01-01T00:00:00Z"}, 0, id="open-future"),
        pytest.param({"due_date": FromNow(timedelta(hours=1))}, 0, id="open-hour-ahead"),
        pytest.param({}, 0, id="open-no-due-date"),
        pytest.param({"completed": True}, 0, id="done-no-due-date"),
        # The local time reads 13 hours ahead, but the instant is an hour ago.
        pytest.param({"due_date": FromNow(-timedelta(hours=1), 14)}, 1, id="past-in-plus-14"),
        # The local time reads 9 hours ago, but the instant is an hour ahead.
        pytest.param({"due_date": FromNow(timedelta(hours=1), -10)}, 0, id="future-in-minus-10"),
    ],
)
def test_overdue_is_open_with_a_due_date_in_the_past(
    client: TestClient, user: ApiUser, fields: dict[str, Any], overdue: int
) -> None:
    due = fields.get("due_date")
    if isinstance(due, FromNow):
        fields = {**fields, "due_date": due.isoformat()}
    create(client, user, **fields)

    counts = stats(client, user)

    assert counts["overdue"] == overdue
    assert counts["total"] == 1


def test_overdue_among_a_mix(client: TestClient, user: ApiUser) -> None:
    past, future = "2001-02-03T04:05:06Z", "2999-02-03T04:05:06Z"
    create(client, user, due_date=past)
    create(client, user, due_date=past, priority="high")
    create(client, user, due_date=past, completed=True)
    create(client, user, due_date=future)
    create(client, user, due_date=future, completed=True)
    create(client, user)
    create(client, user, completed=True)

    assert stats(client, user) == {"total": 7, "completed": 3, "open": 4, "overdue": 2}


def test_stats_follow_writes(client: TestClient, user: ApiUser) -> None:
    late = create(client, user, due_date="2000-01-01T00:00:00Z")
    other = create(client, user)
    assert stats(client, user) == {"total": 2, "completed": 0, "open": 2, "overdue": 1}

    patch(client, user, late, completed=True)
    assert stats(client, user) == {"total": 2, "completed": 1, "open": 1, "overdue": 0}

    patch(client, user, late, completed=False)
    assert stats(client, user) == {"total": 2, "completed": 0, "open": 2, "overdue": 1}

    patch(client, user, late, due_date=None)
    assert stats(client, user) == {"total": 2, "completed": 0, "open": 2, "overdue": 0}

    patch(client, user, other, due_date="2000-01-01T00:00:00Z")
    assert stats(client, user) == {"total": 2, "completed": 0, "open": 2, "overdue": 1}

    replaced = client.put(f"/api/v1/todos/{other}", json={"title": "No date"}, headers=user.headers)
    assert replaced.status_code == 200
    assert stats(client, user) == {"total": 2, "completed": 0, "open": 2, "overdue": 0}

    assert client.delete(f"/api/v1/todos/{late}", headers=user.headers).status_code == 204
    assert stats(client, user) == {"total": 1, "completed": 0, "open": 1, "overdue": 0}


def test_stats_is_not_taken_for_a_todo_id(client: TestClient, user: ApiUser) -> None:
    response = client.get("/api/v1/todos/stats", headers=user.headers)

    assert response.status_code == 200
    assert response.json() == ZERO
    assert "etag" not in response.headers
