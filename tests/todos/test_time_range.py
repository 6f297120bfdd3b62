"""Date-times at the edges of datetime's range: a 422 naming the field, never a 500.

0001-01-01T00:00:00+01:00 is year 0 in UTC, 9999-12-31T23:59:59-01:00 is year 10000: both
parse, and converting them to UTC overflows. Wherever a date-time enters (body, filter, a
cursor the client sends back), that must be the client's 422.
"""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ApiUser
from tests.todos.helpers import (
    all_todos,
    assert_validation_error,
    create,
    decode_cursor,
    encode_cursor,
    fetch,
    real_cursor,
    send,
)

OUT_OF_RANGE = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
# The very edges in UTC are still representable, and accepted.
EDGES = ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]


def assert_names(response: Any, *loc: str) -> None:
    errors = assert_validation_error(response)
    assert any(tuple(error["loc"][-len(loc) :]) == loc for error in errors), errors


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_create_with_a_due_date_out_of_range_is_422(
    client: TestClient, user: ApiUser, value: str
) -> None:
    response = client.post(
        "/api/v1/todos", json={"title": "x", "due_date": value}, headers=user.headers
    )

    assert_names(response, "body", "due_date")
    assert all_todos(client, user) == []


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_write_with_a_due_date_out_of_range_is_422(
    client: TestClient, user: ApiUser, method: str, value: str
) -> None:
    todo = create(client, user)

    response = send(client, user, method, todo["id"], {"title": "y", "due_date": value})

    assert_names(response, "body", "due_date")
    assert fetch(client, user, todo["id"]).json() == todo


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("name", ["due_before", "due_after"])
def test_filter_out_of_range_is_422(
    client: TestClient, user: ApiUser, name: str, value: str
) -> None:
    create(client, user, due_date="2030-01-01T00:00:00Z")

    response = client.get("/api/v1/todos", params={name: value}, headers=user.headers)

    assert_names(response, "query", name)


@pytest.mark.parametrize("value", EDGES)
def test_the_edges_of_the_range_in_utc_are_stored_and_filtered(
    client: TestClient, user: ApiUser, value: str
) -> None:
    todo = create(client, user, due_date=value)

    assert todo["due_date"].removesuffix("Z").removesuffix("+00:00") == value.removesuffix("Z")
    assert fetch(client, user, todo["id"]).json() == todo
    for name in ("due_before", "due_after"):
        response = client.get("/api/v1/todos", params={name: value}, headers=user.headers)
        assert response.status_code == 200, response.text
        assert response.json()["items"] == []  # strict comparisons: the todo matches neither


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("sort", ["created_at", "-updated_at", "due_date"])
def test_a_cursor_made_up_with_a_time_out_of_range_is_422(
    client: TestClient, user: ApiUser, sort: str, value: str
) -> None:
    for i in range(2):
        create(client, user, title=f"todo {i}", due_date="2030-01-01T00:00:00Z")
    payload = decode_cursor(real_cursor(client, user, sort=sort))
    forged = encode_cursor({**payload, "v": value})

    response = client.get(
        "/api/v1/todos", params={"sort": sort, "cursor": forged}, headers=user.headers
    )

    assert_names(response, "query", "cursor")


@pytest.mark.parametrize("value", ["0", "1700000000", "2030-01-01", "12:00", "soon"])
def test_a_filter_that_is_not_a_date_time_is_422(
    client: TestClient, user: ApiUser, value: str
) -> None:
    # Query parameters are strings: pydantic would read digits as a Unix timestamp.
    response = client.get("/api/v1/todos", params={"due_before": value}, headers=user.headers)

    assert_names(response, "query", "due_before")
