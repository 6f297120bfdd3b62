"""Todo CRUD over HTTP: shape, defaults, validation, partial and full updates, ETag/If-Match."""

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from tests.conftest import ApiUser
from tests.todos.helpers import (
    FULL,
    all_todos,
    assert_precondition_failed,
    assert_validation_error,
    create,
    fetch,
    send,
)

TODO_KEYS = {
    "parent_id",
    "id",
    "title",
    "description",
    "completed",
    "priority",
    "due_date",
    "due_day",
    "time_zone",
    "remind_at",
    "completed_at",
    "created_at",
    "updated_at",
    "list_id",
    "position",
    "labels",
    "recurrence",
    "last_completed_at",
    "version",
}
WRITES = [
    ("PATCH", {"title": "Changed"}),
    ("PUT", {"title": "Changed"}),
    ("DELETE", None),
]


def utc(value: str) -> datetime:
    """Parse a time from a response, insisting it is written in UTC as the contract says."""
    assert value.endswith(("Z", "+00:00")), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0)
    return parsed


def assert_recent(value: str) -> None:
    # A server that wrote local time labelled as UTC would be hours off.
    assert abs(datetime.now(UTC) - utc(value)) < timedelta(minutes=5)


# --- create ---------------------------------------------------------------------------------


def test_create_returns_201_with_the_todo_location_and_etag(
    client: TestClient, user: ApiUser
) -> None:
    response = client.post("/api/v1/todos", json={"title": "Buy milk"}, headers=user.headers)

    assert response.status_code == 201
    body = response.json()
    assert set(body) == TODO_KEYS
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert body["title"] == "Buy milk"
    assert body["description"] is None
    assert body["completed"] is False
    assert body["priority"] == "normal"
    assert body["due_date"] is None
    assert body["completed_at"] is None
    assert_recent(body["created_at"])
    assert_recent(body["updated_at"])
    assert response.headers["location"] == f"/api/v1/todos/{body['id']}"
    etag = response.headers["etag"]
    assert re.fullmatch(r'"[^"]+"', etag), etag  # strong: quoted, no W/ prefix


def test_created_todo_is_at_its_location(client: TestClient, user: ApiUser) -> None:
    response = client.post("/api/v1/todos", json={"title": "Buy milk"}, headers=user.headers)

    fetched = client.get(response.headers["location"], headers=user.headers)

    assert fetched.status_code == 200
    assert fetched.json() == response.json()
    assert fetched.headers["etag"] == response.headers["etag"]


def test_create_with_every_writable_field(client: TestClient, user: ApiUser) -> None:
    body = create(client, user, **FULL)

    assert body["title"] == "Write report"
    assert body["description"] == "Quarterly numbers"
    assert body["completed"] is True
    assert body["priority"] == "high"
    assert utc(body["due_date"]) == datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert_recent(body["completed_at"])  # completed turned true on creation
    assert fetch(client, user, body["id"]).json() == body


@pytest.mark.parametrize("priority", ["low", "normal", "high"])
def test_every_priority_is_accepted(client: TestClient, user: ApiUser, priority: str) -> None:
    body = create(client, user, priority=priority)
    assert fetch(client, user, body["id"]).json()["priority"] == priority


@pytest.mark.parametrize("title", ["  Buy milk  ", "\tBuy milk\n", " \u00a0Buy milk\u2003"])
def test_title_is_stored_trimmed(client: TestClient, user: ApiUser, title: str) -> None:
    body = create(client, user, title=title)

    assert body["title"] == "Buy milk"
    assert fetch(client, user, body["id"]).json()["title"] == "Buy milk"


@pytest.mark.parametrize(
    ("title", "stored"),
    [
        ("x" * 200, "x" * 200),
        ("é" * 200, "é" * 200),  # characters, not bytes
        ("  " + "y" * 200 + "  ", "y" * 200),  # the limit applies after trimming
        ("z", "z"),
    ],
    ids=["200-ascii", "200-non-ascii", "200-after-trim", "1"],
)
def test_title_length_limits_are_inclusive(
    client: TestClient, user: ApiUser, title: str, stored: str
) -> None:
    body = create(client, user, title=title)
    assert fetch(client, user, body["id"]).json()["title"] == stored


def test_description_of_10000_characters_is_accepted(client: TestClient, user: ApiUser) -> None:
    body = create(client, user, description="d" * 10_000)
    assert fetch(client, user, body["id"]).json()["description"] == "d" * 10_000


@pytest.mark.parametrize(
    ("due_date", "expected"),
    [
        ("2030-01-02T03:04:05", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2030-01-02T03:04:05.250000", datetime(2030, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)),
    ],
)
def test_naive_due_date_is_read_as_utc(
    client: TestClient, user: ApiUser, due_date: str, expected: datetime
) -> None:
    body = create(client, user, due_date=due_date)

    assert utc(body["due_date"]) == expected
    assert utc(fetch(client, user, body["id"]).json()["due_date"]) == expected


@pytest.mark.parametrize(
    ("due_date", "expected"),
    [
        ("2030-01-02T03:04:05Z", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2030-01-02T03:04:05+00:00", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2030-01-02T03:04:05+02:00", datetime(2030, 1, 2, 1, 4, 5, tzinfo=UTC)),
        ("2030-01-02T03:04:05-05:30", datetime(2030, 1, 2, 8, 34, 5, tzinfo=UTC)),
        ("2030-01-01T23:30:00-02:00", datetime(2030, 1, 2, 1, 30, tzinfo=UTC)),  # next day
        ("2030-01-02T01:00:00+14:00", datetime(2030, 1, 1, 11, 0, tzinfo=UTC)),  # previous day
    ],
)
def test_offset_due_date_is_converted_to_utc(
    client: TestClient, user: ApiUser, due_date: str, expected: datetime
) -> None:
    body = create(client, user, due_date=due_date)

    assert utc(body["due_date"]) == expected
    assert utc(fetch(client, user, body["id"]).json()["due_date"]) == expected


# --- create: validation ----------------------------------------------------------------------

INVALID_CREATES = [
    pytest.param({}, "title", id="missing-title"),
    pytest.param({"description": "no title"}, "title", id="missing-title-with-others"),
    pytest.param({"title": ""}, "title", id="empty-title"),
    pytest.param({"title": "   "}, "title", id="blank-title"),
    pytest.param({"title": "\t\n \r"}, "title", id="whitespace-title"),
    pytest.param({"title": "x" * 201}, "title", id="201-char-title"),
    pytest.param({"title": "  " + "x" * 201 + "  "}, "title", id="201-after-trim"),
    pytest.param({"title": 5}, "title", id="title-number"),
    pytest.param({"title": None}, "title", id="title-null"),
    pytest.param({"title": ["Buy milk"]}, "title", id="title-list"),
    pytest.param({"title": True}, "title", id="title-bool"),
    pytest.param({"title": "t", "description": "d" * 10_001}, "description", id="long-desc"),
    pytest.param({"title": "t", "description": 5}, "description", id="description-number"),
    pytest.param({"title": "t", "priority": "urgent"}, "priority", id="priority-unknown"),
    pytest.param({"title": "t", "priority": "HIGH"}, "priority", id="priority-case"),
    pytest.param({"title": "t", "priority": 2}, "priority", id="priority-rank"),
    pytest.param({"title": "t", "priority": None}, "priority", id="priority-null"),
    pytest.param({"title": "t", "completed": "yes"}, "completed", id="completed-yes"),
    pytest.param({"title": "t", "completed": 1}, "completed", id="completed-1"),
    pytest.param({"title": "t", "completed": 0}, "completed", id="completed-0"),
    pytest.param({"title": "t", "completed": "true"}, "completed", id="completed-string"),
    pytest.param({"title": "t", "completed": None}, "completed", id="completed-null"),
    pytest.param({"title": "t", "due_date": 1_900_000_000}, "due_date", id="due-int"),
    pytest.param({"title": "t", "due_date": 1.5}, "due_date", id="due-float"),
    pytest.param({"title": "t", "due_date": "garbage"}, "due_date", id="due-garbage"),
    pytest.param({"title": "t", "due_date": "2030-13-01T00:00:00Z"}, "due_date", id="due-month"),
    pytest.param({"title": "t", "due_date": True}, "due_date", id="due-bool"),
]


@pytest.mark.parametrize(("body", "field"), INVALID_CREATES)
def test_invalid_create_is_422_and_creates_nothing(
    client: TestClient, user: ApiUser, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/todos", json=body, headers=user.headers)

    errors = assert_validation_error(response)
    assert any(error["loc"][:2] == ["body", field] for error in errors), errors
    assert all_todos(client, user) == []


@pytest.mark.parametrize(
    "content",
    [
        b'{"title": "Buy milk"',
        b"{title: 'Buy milk'}",
        b'[{"title": "Buy milk"}]',
        b'"Buy milk"',
        b"",
    ],
    ids=["truncated", "not-json", "array", "string", "empty"],
)
def test_malformed_body_is_422_and_creates_nothing(
    client: TestClient, user: ApiUser, content: bytes
) -> None:
    response = client.post(
        "/api/v1/todos",
        content=content,
        headers={**user.headers, "Content-Type": "application/json"},
    )

    assert_validation_error(response)
    assert all_todos(client, user) == []


# --- read -----------------------------------------------------------------------------------


def test_get_one_returns_the_todo_with_its_etag(client: TestClient, user: ApiUser) -> None:
    created = client.post("/api/v1/todos", json=FULL, headers=user.headers)

    response = client.get(f"/api/v1/todos/{created.json()['id']}", headers=user.headers)

    assert response.status_code == 200
    assert response.json() == created.json()
    assert set(response.json()) == TODO_KEYS
    assert response.headers["etag"] == created.headers["etag"]


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_unknown_todo_is_404(client: TestClient, user: ApiUser, method: str) -> None:
    create(client, user)
    body = None if method in ("GET", "DELETE") else {"title": "x"}

    response = send(client, user, method, str(uuid.uuid4()), body)

    assert response.status_code == 404
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
@pytest.mark.parametrize("todo_id", ["not-a-uuid", "123", "stats2", "%20"])
def test_todo_id_that_is_not_a_uuid_is_422(
    client: TestClient, user: ApiUser, method: str, todo_id: str
) -> None:
    body = None if method in ("GET", "DELETE") else {"title": "x"}

    response = send(client, user, method, todo_id, body)

    errors = assert_validation_error(response)
    assert any(error["loc"][0] == "path" for error in errors), errors


# --- PATCH ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "patch",
    [
        {"title": "New title"},
        {"description": "New description"},
        {"priority": "low"},
        {"due_date": "2032-02-03T04:05:06Z"},
        {"completed": False},
        {"title": "Both", "priority": "normal"},
    ],
)
def test_patch_changes_only_the_given_fields(
    client: TestClient, user: ApiUser, patch: dict[str, Any]
) -> None:
    before = create(client, user, **FULL)

    response = send(client, user, "PATCH", before["id"], patch)

    assert response.status_code == 200, response.text
    after = response.json()
    assert set(after) == TODO_KEYS
    for field in ("title", "description", "priority", "completed"):
        assert after[field] == patch.get(field, before[field])
    expected_due = utc(patch.get("due_date", before["due_date"]))
    assert utc(after["due_date"]) == expected_due
    assert after["created_at"] == before["created_at"]
    assert fetch(client, user, before["id"]).json() == after


def test_patch_title_is_stored_trimmed(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user)

    response = send(client, user, "PATCH", todo["id"], {"title": "  Renamed \n"})

    assert response.json()["title"] == "Renamed"
    assert fetch(client, user, todo["id"]).json()["title"] == "Renamed"


@pytest.mark.parametrize("field", ["description", "due_date"])
def test_patch_null_clears_a_nullable_field(client: TestClient, user: ApiUser, field: str) -> None:
    todo = create(client, user, **FULL)

    response = send(client, user, "PATCH", todo["id"], {field: None})

    assert response.status_code == 200
    assert response.json()[field] is None
    stored = fetch(client, user, todo["id"]).json()
    assert stored[field] is None
    assert stored["title"] == FULL["title"]  # the rest is untouched
    assert stored["priority"] == FULL["priority"]


@pytest.mark.parametrize(
    "patch",
    [
        pytest.param({"title": None}, id="title-null"),
        pytest.param({"completed": None}, id="completed-null"),
        pytest.param({"priority": None}, id="priority-null"),
        pytest.param({"title": "   "}, id="title-blank"),
        pytest.param({"title": "x" * 201}, id="title-201"),
        pytest.param({"title": 5}, id="title-number"),
        pytest.param({"description": "d" * 10_001}, id="description-long"),
        pytest.param({"priority": "urgent"}, id="priority-unknown"),
        pytest.param({"completed": "yes"}, id="completed-yes"),
        pytest.param({"completed": 1}, id="completed-1"),
        pytest.param({"due_date": 1_900_000_000}, id="due-number"),
        pytest.param({"due_date": "soon"}, id="due-garbage"),
        pytest.param({"title": "Valid", "priority": "urgent"}, id="valid-and-invalid"),
    ],
)
def test_invalid_patch_is_422_and_changes_nothing(
    client: TestClient, user: ApiUser, patch: dict[str, Any]
) -> None:
    todo = create(client, user, **FULL)
    before = fetch(client, user, todo["id"])

    response = send(client, user, "PATCH", todo["id"], patch)

    assert_validation_error(response)
    after = fetch(client, user, todo["id"])
    assert after.json() == before.json()
    assert after.headers["etag"] == before.headers["etag"]


def test_patch_with_malformed_json_is_422(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user)

    response = client.patch(
        f"/api/v1/todos/{todo['id']}",
        content=b'{"title": ',
        headers={**user.headers, "Content-Type": "application/json"},
    )

    assert_validation_error(response)
    assert fetch(client, user, todo["id"]).json() == todo


def test_completed_at_follows_completed(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user)
    assert todo["completed_at"] is None

    done = send(client, user, "PATCH", todo["id"], {"completed": True}).json()
    assert done["completed"] is True
    assert_recent(done["completed_at"])

    again = send(client, user, "PATCH", todo["id"], {"completed": True}).json()
    assert again["completed_at"] == done["completed_at"]  # it did not turn true again

    renamed = send(client, user, "PATCH", todo["id"], {"title": "Other"}).json()
    assert renamed["completed_at"] == done["completed_at"]

    reopened = send(client, user, "PATCH", todo["id"], {"completed": False}).json()
    assert reopened["completed"] is False
    assert reopened["completed_at"] is None
    assert fetch(client, user, todo["id"]).json()["completed_at"] is None


def test_completing_again_after_reopening_sets_a_new_completed_at(
    client: TestClient, user: ApiUser
) -> None:
    todo = create(client, user, completed=True)
    send(client, user, "PATCH", todo["id"], {"completed": False})

    done = send(client, user, "PATCH", todo["id"], {"completed": True}).json()

    assert utc(done["completed_at"]) > utc(todo["completed_at"])


def test_patch_advances_updated_at_and_keeps_created_at(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user)

    first = send(client, user, "PATCH", todo["id"], {"title": "One"}).json()
    second = send(client, user, "PATCH", todo["id"], {"title": "Two"}).json()

    assert utc(todo["updated_at"]) < utc(first["updated_at"]) < utc(second["updated_at"])
    assert todo["created_at"] == first["created_at"] == second["created_at"]
    assert fetch(client, user, todo["id"]).json()["updated_at"] == second["updated_at"]


# --- PUT ------------------------------------------------------------------------------------


def test_put_replaces_every_writable_field(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user)

    response = send(client, user, "PUT", todo["id"], {**FULL, "title": "  Replaced  "})

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == TODO_KEYS
    assert body["id"] == todo["id"]
    assert body["title"] == "Replaced"
    assert body["description"] == FULL["description"]
    assert body["completed"] is True
    assert_recent(body["completed_at"])
    assert body["priority"] == "high"
    assert utc(body["due_date"]) == datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert body["created_at"] == todo["created_at"]
    assert utc(body["updated_at"]) > utc(todo["updated_at"])
    assert fetch(client, user, todo["id"]).json() == body


def test_put_resets_omitted_fields_to_their_defaults(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user, **FULL)

    response = send(client, user, "PUT", todo["id"], {"title": "Only a title"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["title"] == "Only a title"
    assert body["description"] is None
    assert body["priority"] == "normal"
    assert body["completed"] is False
    assert body["completed_at"] is None
    assert body["due_date"] is None
    assert fetch(client, user, todo["id"]).json() == body


def test_put_keeps_completed_at_when_completed_stays_true(
    client: TestClient, user: ApiUser
) -> None:
    todo = create(client, user, completed=True)

    body = send(client, user, "PUT", todo["id"], {"title": "Still done", "completed": True}).json()

    assert body["completed_at"] == todo["completed_at"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="empty"),
        pytest.param({"description": "no title", "priority": "high"}, id="no-title"),
        pytest.param({"title": "   "}, id="blank-title"),
        pytest.param({"title": None}, id="null-title"),
        pytest.param({"title": "t", "completed": "yes"}, id="completed-yes"),
        pytest.param({"title": "t", "priority": "urgent"}, id="priority-unknown"),
        pytest.param({"title": "t", "due_date": 12}, id="due-number"),
    ],
)
def test_invalid_put_is_422_and_changes_nothing(
    client: TestClient, user: ApiUser, body: dict[str, Any]
) -> None:
    todo = create(client, user, **FULL)
    before = fetch(client, user, todo["id"])

    response = send(client, user, "PUT", todo["id"], body)

    assert_validation_error(response)
    after = fetch(client, user, todo["id"])
    assert after.json() == before.json()
    assert after.headers["etag"] == before.headers["etag"]


# --- DELETE ---------------------------------------------------------------------------------


def test_delete_is_204_then_the_todo_is_gone(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user)
    kept = create(client, user, title="Keep me")

    response = send(client, user, "DELETE", todo["id"])

    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"/api/v1/todos/{todo['id']}", headers=user.headers).status_code == 404
    assert send(client, user, "DELETE", todo["id"]).status_code == 404
    assert [item["id"] for item in all_todos(client, user)] == [kept["id"]]


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_write_to_a_deleted_todo_is_404(client: TestClient, user: ApiUser, method: str) -> None:
    todo = create(client, user)
    send(client, user, "DELETE", todo["id"])

    response = send(client, user, method, todo["id"], {"title": "Back from the dead"})

    assert response.status_code == 404
    assert all_todos(client, user) == []


# --- ETag and If-Match ----------------------------------------------------------------------


def test_etag_changes_on_every_write(client: TestClient, user: ApiUser) -> None:
    created = client.post("/api/v1/todos", json={"title": "Buy milk"}, headers=user.headers)
    todo_id = created.json()["id"]
    seen = [created.headers["etag"]]

    for method, body in [
        ("PATCH", {"title": "One"}),
        ("PUT", {"title": "Two"}),
        ("PATCH", {"completed": True}),
        ("PUT", {"title": "Two"}),  # resets completed
        # The same values again change nothing, and keep the ETag: tests/todos/test_conditional.
    ]:
        response = send(client, user, method, todo_id, body)
        assert response.status_code == 200, response.text
        etag = response.headers["etag"]
        assert re.fullmatch(r'"[^"]+"', etag), etag
        assert etag not in seen, (method, body, seen)
        assert fetch(client, user, todo_id).headers["etag"] == etag
        seen.append(etag)


def test_reading_does_not_change_the_etag(client: TestClient, user: ApiUser) -> None:
    created = client.post("/api/v1/todos", json={"title": "Buy milk"}, headers=user.headers)
    todo_id = created.json()["id"]

    etags = {fetch(client, user, todo_id).headers["etag"] for _ in range(3)}

    assert etags == {created.headers["etag"]}


@pytest.mark.parametrize(("method", "body"), WRITES)
def test_if_match_with_the_current_etag_succeeds(
    client: TestClient, user: ApiUser, method: str, body: dict[str, Any] | None
) -> None:
    todo = create(client, user)
    send(client, user, "PATCH", todo["id"], {"description": "bump the version"})
    current = fetch(client, user, todo["id"]).headers["etag"]

    response = send(client, user, method, todo["id"], body, if_match=current)

    assert response.status_code == (204 if method == "DELETE" else 200), response.text
    if method == "DELETE":
        assert all_todos(client, user) == []
    else:
        assert fetch(client, user, todo["id"]).json()["title"] == "Changed"


@pytest.mark.parametrize(("method", "body"), WRITES)
@pytest.mark.parametrize(
    "if_match",
    # {stale} and {current} are filled in with the todo's old and current ETags.
    [
        pytest.param("{stale}", id="stale"),
        pytest.param("W/{current}", id="weak-current"),
        pytest.param('"no-such-version"', id="unknown"),
        pytest.param('{stale}, W/{current}, "nope"', id="list-without-a-strong-match"),
    ],
)
def test_if_match_that_does_not_match_is_412_and_changes_nothing(
    client: TestClient,
    user: ApiUser,
    method: str,
    body: dict[str, Any] | None,
    if_match: str,
) -> None:
    created = client.post("/api/v1/todos", json={"title": "Buy milk"}, headers=user.headers)
    todo_id = created.json()["id"]
    send(client, user, "PATCH", todo_id, {"description": "bump the version"})
    before = fetch(client, user, todo_id)
    stale, current = created.headers["etag"], before.headers["etag"]
    assert stale != current
    header = if_match.format(stale=stale, current=current)

    response = send(client, user, method, todo_id, body, if_match=header)

    assert_precondition_failed(response)
    after = fetch(client, user, todo_id)  # for DELETE: it still exists
    assert after.json() == before.json()
    assert after.headers["etag"] == current


@pytest.mark.parametrize(("method", "body"), WRITES)
def test_if_match_star_matches(
    client: TestClient, user: ApiUser, method: str, body: dict[str, Any] | None
) -> None:
    todo = create(client, user)
    send(client, user, "PATCH", todo["id"], {"description": "bump the version"})

    response = send(client, user, method, todo["id"], body, if_match="*")

    assert response.status_code == (204 if method == "DELETE" else 200), response.text


@pytest.mark.parametrize(("method", "body"), WRITES)
def test_if_match_list_containing_the_current_etag_matches(
    client: TestClient, user: ApiUser, method: str, body: dict[str, Any] | None
) -> None:
    created = client.post("/api/v1/todos", json={"title": "Buy milk"}, headers=user.headers)
    todo_id = created.json()["id"]
    send(client, user, "PATCH", todo_id, {"description": "bump the version"})
    current = fetch(client, user, todo_id).headers["etag"]
    stale = created.headers["etag"]

    response = send(client, user, method, todo_id, body, if_match=f'{stale}, "nope",{current}')

    assert response.status_code == (204 if method == "DELETE" else 200), response.text


def test_stale_etag_after_a_put_is_rejected(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user)
    first = fetch(client, user, todo["id"]).headers["etag"]
    replaced = send(client, user, "PUT", todo["id"], {"title": "Replaced"}, if_match=first)
    assert replaced.status_code == 200

    retry = send(client, user, "PUT", todo["id"], {"title": "Lost update"}, if_match=first)

    assert_precondition_failed(retry)
    assert fetch(client, user, todo["id"]).json()["title"] == "Replaced"


# --- headers on every response --------------------------------------------------------------


def test_every_todo_response_is_no_store(client: TestClient, user: ApiUser) -> None:
    created = client.post("/api/v1/todos", json={"title": "Buy milk"}, headers=user.headers)
    todo_id = created.json()["id"]
    responses = {
        "create": created,
        "list": client.get("/api/v1/todos", headers=user.headers),
        "stats": client.get("/api/v1/todos/stats", headers=user.headers),
        "read": client.get(f"/api/v1/todos/{todo_id}", headers=user.headers),
        "patch": send(client, user, "PATCH", todo_id, {"title": "x"}),
        "put": send(client, user, "PUT", todo_id, {"title": "y"}),
        "412": send(client, user, "PATCH", todo_id, {"title": "z"}, if_match='"0"'),
        "422": client.post("/api/v1/todos", json={}, headers=user.headers),
        "422-id": client.get("/api/v1/todos/nope", headers=user.headers),
        "404": client.get(f"/api/v1/todos/{uuid.uuid4()}", headers=user.headers),
        "401": client.get(f"/api/v1/todos/{todo_id}"),
        "delete": send(client, user, "DELETE", todo_id),
    }
    statuses = {name: response.status_code for name, response in responses.items()}
    assert statuses == {
        "create": 201,
        "list": 200,
        "stats": 200,
        "read": 200,
        "patch": 200,
        "put": 200,
        "412": 412,
        "422": 422,
        "422-id": 422,
        "404": 404,
        "401": 401,
        "delete": 204,
    }
    # Reads of a todo and of a page may be kept and revalidated (API.md "Caching (v1.2)");
    # writes, stats and every error never.
    cacheable = {"list", "read"}
    for name, response in responses.items():
        expected = "private, no-cache" if name in cacheable else "no-store"
        assert response.headers.get("cache-control") == expected, name


# --- concurrent writes ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_concurrent_writes_with_one_etag_let_exactly_one_through(
    client: TestClient, user: ApiUser, method: str
) -> None:
    todo = create(client, user)
    etag = fetch(client, user, todo["id"]).headers["etag"]
    writers = 8

    def write(n: int) -> httpx2.Response:
        body = None if method == "DELETE" else {"title": f"writer {n}"}
        return send(client, user, method, todo["id"], body, if_match=etag)

    with ThreadPoolExecutor(max_workers=writers) as pool:
        responses = list(pool.map(write, range(writers)))

    won = [r for r in responses if r.status_code in (200, 204)]
    assert len(won) == 1, [r.status_code for r in responses]
    for response in responses:
        if response not in won:
            # The loser of a DELETE race finds the todo gone: 404, never a second 204.
            assert response.status_code == (404 if method == "DELETE" else 412), response.text
    if method != "DELETE":
        stored = fetch(client, user, todo["id"])
        assert stored.json()["title"] == won[0].json()["title"]
        assert stored.headers["etag"] == won[0].headers["etag"] != etag


def test_concurrent_writes_without_if_match_all_land(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user)
    first = int(fetch(client, user, todo["id"]).headers["etag"].strip('"'))
    writers = 8

    def write(n: int) -> int:
        return send(client, user, "PATCH", todo["id"], {"description": f"writer {n}"}).status_code

    with ThreadPoolExecutor(max_workers=writers) as pool:
        assert list(pool.map(write, range(writers))) == [200] * writers
    # Every write bumped the version once: none was lost or applied twice.
    assert fetch(client, user, todo["id"]).headers["etag"] == f'"{first + writers}"'
