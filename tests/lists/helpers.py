"""Creating lists and todos over HTTP, for the lists, order and feed tests."""

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import ApiUser


def create_list(client: TestClient, user: ApiUser, name: str = "Work") -> dict[str, Any]:
    response = client.post("/api/v1/lists", json={"name": name}, headers=user.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def create_todo(client: TestClient, user: ApiUser, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/v1/todos", json={"title": "t", **fields}, headers=user.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
