"""A user sees and touches only their own todos; without a valid token, nothing at all."""

import uuid
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from tests.conftest import ApiUser

WRITE_BODY = {"title": "Hijacked", "completed": True, "priority": "low"}


def create(client: TestClient, user: ApiUser, **fields: Any) -> dict[str, Any]:
    body = {"title": "Private plans", "description": "secret", **fields}
    response = client.post("/api/v1/todos", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    todo: dict[str, Any] = response.json()
    return todo


def fetch(client: TestClient, user: ApiUser, todo_id: str) -> httpx2.Response:
    response = client.get(f"/api/v1/todos/{todo_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    return response


def request(
    client: TestClient,
    method: str,
    path: str,
    headers: dict[str, str],
    body: dict[str, Any] | None = None,
) -> httpx2.Response:
    return client.request(method, path, json=body, headers=headers)


def listed_ids(client: TestClient, user: ApiUser, **params: Any) -> list[str]:
    response = client.get("/api/v1/todos", params={"limit": 100, **params}, headers=user.headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


@pytest.mark.parametrize(
    ("method", "body", "if_match"),
    [
        ("GET", None, None),
        ("PATCH", WRITE_BODY, None),
        ("PATCH", WRITE_BODY, "*"),
        ("PUT", WRITE_BODY, None),
        ("PUT", WRITE_BODY, "*"),
        ("DELETE", None, None),
        ("DELETE", None, "*"),
    ],
)
def test_another_users_todo_is_indistinguishable_from_a_missing_one(
    client: TestClient,
    user: ApiUser,
    other_user: ApiUser,
    method: str,
    body: dict[str, Any] | None,
    if_match: str | None,
) -> None:
    todo = create(client, user)
    headers = dict(other_user.headers)
    if if_match is not None:
        headers["If-Match"] = if_match
    # Even the todo's current ETag (easily guessed: a version number) must not unlock it.
    headers_with_etag = {
        **other_user.headers,
        "If-Match": fetch(client, user, todo["id"]).headers["etag"],
    }

    theirs = request(client, method, f"/api/v1/todos/{todo['id']}", headers, body)
    missing = request(client, method, f"/api/v1/todos/{uuid.uuid4()}", headers, body)
    with_etag = request(client, method, f"/api/v1/todos/{todo['id']}", headers_with_etag, body)

    assert theirs.status_code == missing.status_code == with_etag.status_code == 404
    assert theirs.content == missing.content == with_etag.content
    assert theirs.headers["content-type"] == missing.headers["content-type"]
    assert "etag" not in theirs.headers
    assert fetch(client, user, todo["id"]).json() == todo


def test_another_users_attempts_leave_the_todo_unchanged(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    todo = create(client, user, priority="high", due_date="2030-01-01T00:00:00Z")
    before = fetch(client, user, todo["id"])
    path = f"/api/v1/todos/{todo['id']}"

    for method, body in [
        ("PATCH", WRITE_BODY),
        ("PATCH", {"description": None, "due_date": None}),
        ("PUT", WRITE_BODY),
        ("PUT", {"title": "Reset"}),
        ("DELETE", None),
    ]:
        for if_match in (None, "*", before.headers["etag"]):
            headers = dict(other_user.headers)
            if if_match is not None:
                headers["If-Match"] = if_match
            assert request(client, method, path, headers, body).status_code == 404

    after = fetch(client, user, todo["id"])
    assert after.json() == before.json()
    assert after.headers["etag"] == before.headers["etag"]
    assert listed_ids(client, user) == [todo["id"]]


def test_list_shows_only_the_callers_todos(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    mine = {create(client, user, title=f"Mine {n}")["id"] for n in range(3)}
    theirs = {create(client, other_user, title=f"Theirs {n}")["id"] for n in range(2)}

    assert set(listed_ids(client, user)) == mine
    assert set(listed_ids(client, other_user)) == theirs


@pytest.mark.parametrize(
    "params",
    [
        {"q": "Private"},
        {"q": "secret"},
        {"completed": "true"},
        {"completed": "false"},
        {"priority": "high"},
        {"due_before": "2100-01-01T00:00:00Z"},
        {"due_after": "2000-01-01T00:00:00Z"},
        {"sort": "title"},
        {"sort": "-priority"},
        {"sort": "due_date"},
    ],
)
def test_filters_never_reach_another_users_todos(
    client: TestClient, user: ApiUser, other_user: ApiUser, params: dict[str, str]
) -> None:
    create(client, user, priority="high", due_date="2050-01-01T00:00:00Z")
    create(client, user, completed=True, priority="high", due_date="2050-01-01T00:00:00Z")

    assert listed_ids(client, other_user, **params) == []


def test_list_pages_walk_only_the_callers_todos(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    for n in range(3):
        create(client, user, title=f"Mine {n}")
    theirs = {create(client, other_user, title=f"Theirs {n}")["id"] for n in range(3)}

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1}
        if cursor is not None:
            params["cursor"] = cursor
        page = client.get("/api/v1/todos", params=params, headers=other_user.headers).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(theirs)


def test_stats_count_only_the_callers_todos(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    create(client, user)
    create(client, user, completed=True)
    create(client, user, due_date="2000-01-01T00:00:00Z")

    theirs = client.get("/api/v1/todos/stats", headers=other_user.headers)
    mine = client.get("/api/v1/todos/stats", headers=user.headers)

    assert theirs.status_code == 200
    assert theirs.json() == {"total": 0, "completed": 0, "open": 0, "overdue": 0}
    assert mine.json() == {"total": 3, "completed": 1, "open": 2, "overdue": 1}


# --- no valid token -------------------------------------------------------------------------

ROUTES = [
    ("POST", "/api/v1/todos", {"title": "Sneaky"}),
    ("GET", "/api/v1/todos", None),
    ("GET", "/api/v1/todos/stats", None),
    ("GET", "/api/v1/todos/{id}", None),
    ("PATCH", "/api/v1/todos/{id}", {"title": "Sneaky"}),
    ("PUT", "/api/v1/todos/{id}", {"title": "Sneaky"}),
    ("DELETE", "/api/v1/todos/{id}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize(
    "credentials",
    ["none", "empty-bearer", "garbage", "basic", "refresh-token", "tampered"],
)
def test_every_todo_route_needs_a_valid_bearer_token(
    client: TestClient,
    user: ApiUser,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    credentials: str,
) -> None:
    todo = create(client, user)
    before = fetch(client, user, todo["id"])
    header, payload, signature = user.access_token.split(".")
    forged = ("B" if signature[0] == "A" else "A") + signature[1:]
    authorization = {
        "none": None,
        "empty-bearer": "Bearer ",
        "garbage": "Bearer not-a-token",
        "basic": "Basic dXNlckBleGFtcGxlLmNvbTpwYXNzd29yZA==",
        "refresh-token": f"Bearer {user.refresh_token}",
        "tampered": f"Bearer {header}.{payload}.{forged}",
    }[credentials]
    headers = {} if authorization is None else {"Authorization": authorization}

    response = request(client, method, path.format(id=todo["id"]), headers, body)

    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert set(response.json()) == {"detail"}
    assert isinstance(response.json()["detail"], str)
    assert response.headers["cache-control"] == "no-store"
    after = fetch(client, user, todo["id"])
    assert after.json() == before.json()
    assert after.headers["etag"] == before.headers["etag"]
    assert listed_ids(client, user) == [todo["id"]]
