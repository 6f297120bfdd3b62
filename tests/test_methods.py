"""A method the path does not support: 405 with `Allow` listing every method it does support
(RFC 9110 §15.5.6), whichever route the router happened to try first."""

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import ApiUser

TODO = "/api/v1/todos/8d2f1c3a-5b6e-4f70-9a81-b2c3d4e5f607"
CASES = [
    ("OPTIONS", TODO, {"GET", "PUT", "PATCH", "DELETE"}),
    ("POST", TODO, {"GET", "PUT", "PATCH", "DELETE"}),
    ("OPTIONS", "/api/v1/users/me", {"GET", "PATCH", "DELETE"}),
    ("PUT", "/api/v1/users/me", {"GET", "PATCH", "DELETE"}),
    ("PUT", "/api/v1/todos/stats", {"GET"}),
    ("DELETE", "/api/v1/todos/stats", {"GET"}),
    ("DELETE", "/api/v1/todos", {"GET", "POST"}),
    ("GET", "/api/v1/auth/token", {"POST"}),
    ("GET", "/api/v1/users/me/password", {"POST"}),
    ("PUT", "/api/v1/users/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", {"PATCH"}),
    ("POST", "/health", {"GET"}),
]


def allowed(response: object) -> set[str]:
    header: str = response.headers["allow"]  # type: ignore[attr-defined]
    return {method.strip() for method in header.split(",")}


@pytest.mark.parametrize(("method", "path", "methods"), CASES)
def test_unsupported_method_is_405_with_every_supported_method(
    client: TestClient, user: ApiUser, method: str, path: str, methods: set[str]
) -> None:
    response = client.request(method, path, headers=user.headers)

    assert response.status_code == 405, response.text
    assert allowed(response) == methods
    assert response.json() == {"detail": "Method Not Allowed"}


@pytest.mark.parametrize("todo_id", ["stats2", "statistics", "xstats"])
def test_ids_that_only_look_like_stats_are_still_read_as_ids(
    client: TestClient, user: ApiUser, todo_id: str
) -> None:
    response = client.put(f"/api/v1/todos/{todo_id}", json={"title": "x"}, headers=user.headers)

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["path", "todo_id"]


def test_cors_preflight_still_answers_when_origins_are_configured(
    settings: object, user: ApiUser
) -> None:
    app = create_app(settings.model_copy(update={"cors_origins": ["https://app.example"]}))  # type: ignore[attr-defined]
    with TestClient(app) as client:
        response = client.options(
            TODO,
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "authorization, if-match",
            },
        )

    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "PATCH" in response.headers["access-control-allow-methods"]
