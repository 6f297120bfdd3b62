"""Helpers the todo tests share: requests as a client sends them, and the contract's error
shapes. Test modules import these from here, never from one another (tests/test_imports.py)."""

import base64
import json
from typing import Any

import httpx2
from fastapi.testclient import TestClient

from tests.conftest import ApiUser

FULL = {
    "title": "Write report",
    "description": "Quarterly numbers",
    "completed": True,
    "priority": "high",
    "due_date": "2031-05-06T07:08:09Z",
}


def create(client: TestClient, user: ApiUser, **fields: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/todos", json={"title": "Buy milk", **fields}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def fetch(client: TestClient, user: ApiUser, todo_id: str) -> httpx2.Response:
    response = client.get(f"/api/v1/todos/{todo_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    return response


def send(
    client: TestClient,
    user: ApiUser,
    method: str,
    todo_id: str,
    body: dict[str, Any] | None = None,
    if_match: str | None = None,
) -> httpx2.Response:
    headers = dict(user.headers)
    if if_match is not None:
        headers["If-Match"] = if_match
    return client.request(method, f"/api/v1/todos/{todo_id}", json=body, headers=headers)


def all_todos(client: TestClient, user: ApiUser) -> list[dict[str, Any]]:
    response = client.get("/api/v1/todos", params={"limit": 100}, headers=user.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def list_todos(client: TestClient, user: ApiUser, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/todos", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"items", "next_cursor"}
    return body


def assert_validation_error(response: httpx2.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    for error in detail:
        assert {"loc", "msg", "type"} <= set(error)
        assert isinstance(error["loc"], list)
        assert isinstance(error["msg"], str)
        assert isinstance(error["type"], str)
    errors: list[dict[str, Any]] = detail
    return errors


def assert_precondition_failed(response: httpx2.Response) -> None:
    assert response.status_code == 412, response.text
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str)
    assert body["detail"]


def decode_cursor(cursor: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    )
    return payload


def encode_cursor(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def real_cursor(client: TestClient, user: ApiUser, **params: Any) -> str:
    """The next_cursor of a first page of one todo (there must be a second)."""
    page = list_todos(client, user, limit=1, **params)
    assert page["next_cursor"] is not None
    cursor: str = page["next_cursor"]
    return cursor
