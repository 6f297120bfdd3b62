"""Meta routes and what every response carries (request id, nosniff, no-store, size limit, 500)."""

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import ApiUser


def test_root_names_the_service(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.json() == {"name": "todo-api", "version": "1.0.0", "docs_url": "/docs"}


def test_api_info(client: TestClient) -> None:
    body = client.get("/api/info").json()
    assert body["name"] == "todo-api"
    assert body["description"]
    assert (body["docs_url"], body["redoc_url"], body["openapi_url"]) == (
        "/docs",
        "/redoc",
        "/openapi.json",
    )


def test_health_is_liveness(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["version"] == "1.0.0"
    assert body["uptime_seconds"] >= 0


def test_ready_checks_the_database(client: TestClient) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok"}


def test_ready_is_503_when_the_database_is_unreachable(app: FastAPI) -> None:
    app.state.settings.database_url = "postgresql+psycopg2://nobody@127.0.0.1:1/none"
    app.state.settings.migrate_on_startup = False
    with TestClient(app) as client:
        response = client.get("/health/ready")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "database": "error"}
        assert client.get("/health").status_code == 200


@pytest.mark.parametrize("path", ["/", "/health", "/api/v1/todos", "/nowhere"])
def test_every_response_has_request_id_and_nosniff(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert response.headers["x-content-type-options"] == "nosniff"


def test_request_id_is_echoed_when_valid(client: TestClient) -> None:
    response = client.get("/health", headers={"X-Request-ID": "abc-123_x.y"})
    assert response.headers["x-request-id"] == "abc-123_x.y"


@pytest.mark.parametrize("bad", [b"has space", b"x" * 129, b"semi;colon", "ünï".encode(), b""])
def test_invalid_request_id_is_replaced(client: TestClient, bad: bytes) -> None:
    response = client.get("/health", headers={"X-Request-ID": bad})
    assert response.headers["x-request-id"].encode() != bad
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_no_store_only_under_api_v1(client: TestClient, user: ApiUser) -> None:
    me = client.get("/api/v1/users/me", headers=user.headers)
    assert me.headers["cache-control"] == "no-store"
    assert client.get("/api/v1/todos").headers["cache-control"] == "no-store"  # 401 too
    assert "cache-control" not in client.get("/health").headers


def test_body_over_limit_is_413_and_creates_nothing(client: TestClient, user: ApiUser) -> None:
    big = b'{"title": "x", "description": "' + b"a" * (1024 * 1024) + b'"}'
    response = client.post(
        "/api/v1/todos", content=big, headers={**user.headers, "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "detail" in response.json()
    assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/api/v1/todos", headers=user.headers).json()["items"] == []


def test_chunked_body_over_limit_is_413(client: TestClient, user: ApiUser) -> None:
    def chunks():  # no Content-Length: the limit must be enforced while reading
        for _ in range(17):
            yield b"a" * 65536

    response = client.post(
        "/api/v1/todos",
        content=chunks(),
        headers={**user.headers, "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert client.get("/api/v1/todos", headers=user.headers).json()["items"] == []


def test_body_at_the_limit_is_not_413(client: TestClient, user: ApiUser) -> None:
    body = b'{"title": "x"}'
    padded = body + b" " * (1024 * 1024 - len(body))
    response = client.post(
        "/api/v1/todos",
        content=padded,
        headers={**user.headers, "content-type": "application/json"},
    )
    assert response.status_code == 201


def test_unexpected_error_is_500_without_internals(app: FastAPI) -> None:
    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals: SELECT * FROM users")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-ID": "trace-me"})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error", "request_id": "trace-me"}
    assert response.headers["x-request-id"] == "trace-me"
    assert "SELECT" not in response.text


def test_openapi_declares_the_password_flow(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    flows = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    assert flows["password"]["tokenUrl"] == "/api/v1/auth/token"
    assert client.get("/docs").status_code == 200


def test_swagger_authorize_flow_logs_in_and_lists_todos(client: TestClient, user: ApiUser) -> None:
    # What Swagger UI's Authorize dialog sends for the password flow: a form post to tokenUrl
    # with grant_type, username (the email), password and an empty scope.
    response = client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "password",
            "username": user.email,
            "password": user.password,
            "scope": "",
        },
    )
    assert response.status_code == 200
    token = response.json()["access_token"]
    listed = client.get("/api/v1/todos", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200


def test_paths_answer_without_redirect(client: TestClient, user: ApiUser) -> None:
    response = client.get("/api/v1/todos/", headers=user.headers, follow_redirects=False)
    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_may_load_only_from_the_app(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "img-src 'self' data:" in policy  # ReDoc's bundle hard-codes a CDN logo
    assert "http" not in response.text.split("<body", 1)[0].replace("http-equiv", "")
    assert "content-security-policy" not in client.get("/health").headers
