"""Text the database or bcrypt cannot take (NUL) is a 422 on every route that accepts text."""

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ApiUser

NUL = "a\x00b"


@pytest.mark.parametrize(
    "body",
    [
        {"email": "nul@example.com", "password": f"password{NUL}"},
        {"email": "nul@example.com", "password": "password123", "full_name": NUL},
        {"email": f"n{NUL}@example.com", "password": "password123"},
    ],
)
def test_register_rejects_nul(client: TestClient, body: dict[str, str]) -> None:
    response = client.post("/api/v1/auth/register", json=body)
    assert response.status_code == 422
    assert "password123" not in response.text


@pytest.mark.parametrize("field", ["username", "password"])
def test_login_rejects_nul(client: TestClient, user: ApiUser, field: str) -> None:
    form = {"username": user.email, "password": user.password}
    form[field] = form[field] + "\x00"
    response = client.post("/api/v1/auth/token", data=form)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]


@pytest.mark.parametrize("field", ["title", "description"])
def test_todo_text_rejects_nul(client: TestClient, user: ApiUser, field: str) -> None:
    body = {"title": "ok", field: NUL}
    assert client.post("/api/v1/todos", json=body, headers=user.headers).status_code == 422
    created = client.post("/api/v1/todos", json={"title": "ok"}, headers=user.headers).json()
    path = f"/api/v1/todos/{created['id']}"
    assert client.patch(path, json={field: NUL}, headers=user.headers).status_code == 422
    assert client.put(path, json=body, headers=user.headers).status_code == 422
    assert client.get(path, headers=user.headers).json()[field] == (
        "ok" if field == "title" else None
    )


def test_profile_rejects_nul(client: TestClient, user: ApiUser) -> None:
    response = client.patch("/api/v1/users/me", json={"full_name": NUL}, headers=user.headers)
    assert response.status_code == 422
    assert client.get("/api/v1/users/me", headers=user.headers).json()["full_name"] is None
