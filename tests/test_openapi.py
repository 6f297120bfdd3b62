"""/openapi.json declares what the server enforces and sends (spec/API.md, the paragraph on it).

The schema is read as a client developer's tools read it: from the app. What it promises about
live responses (headers, content types) is checked against the running app here too, and by
schemathesis and a generated client (tests/runtime/test_schemathesis_cli.py,
tests/runtime/test_generated_client.py).
"""

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ApiUser

# What generated clients call the operations: the route functions' own names.
OPERATION_IDS = {
    ("post", "/api/v1/todos"): "create_todo",
    ("get", "/api/v1/todos"): "list_todos",
    ("get", "/api/v1/todos/stats"): "todo_stats",
    ("get", "/api/v1/todos/{todo_id}"): "read_todo",
    ("patch", "/api/v1/todos/{todo_id}"): "update_todo",
    ("put", "/api/v1/todos/{todo_id}"): "replace_todo",
    ("delete", "/api/v1/todos/{todo_id}"): "delete_todo",
    ("post", "/api/v1/todos/{todo_id}/move"): "move_todo",
    ("post", "/api/v1/lists"): "create_list",
    ("get", "/api/v1/lists"): "list_lists",
    ("get", "/api/v1/lists/{list_id}"): "read_list",
    ("patch", "/api/v1/lists/{list_id}"): "rename_list",
    ("delete", "/api/v1/lists/{list_id}"): "delete_list",
    ("post", "/api/v1/lists/{list_id}/move"): "move_list",
    ("get", "/api/v1/labels"): "list_labels",
    ("get", "/api/v1/changes"): "list_changes",
    ("post", "/api/v1/auth/register"): "register",
    ("post", "/api/v1/auth/token"): "login",
    ("post", "/api/v1/auth/refresh"): "refresh",
    ("post", "/api/v1/auth/logout"): "logout",
    ("get", "/api/v1/users/me"): "read_me",
    ("patch", "/api/v1/users/me"): "update_me",
    ("delete", "/api/v1/users/me"): "delete_me",
    ("post", "/api/v1/users/me/password"): "change_password",
    ("get", "/api/v1/users"): "list_users",
    ("patch", "/api/v1/users/{user_id}"): "update_user",
    ("get", "/"): "root",
    ("get", "/api/info"): "info",
    ("get", "/health"): "health",
    ("get", "/health/ready"): "ready",
    ("get", "/metrics"): "metrics",
}
WITH_BODY = {
    ("post", "/api/v1/todos"),
    ("patch", "/api/v1/todos/{todo_id}"),
    ("put", "/api/v1/todos/{todo_id}"),
    ("post", "/api/v1/todos/{todo_id}/move"),
    ("post", "/api/v1/lists"),
    ("patch", "/api/v1/lists/{list_id}"),
    ("post", "/api/v1/lists/{list_id}/move"),
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/token"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("patch", "/api/v1/users/me"),
    ("delete", "/api/v1/users/me"),
    ("post", "/api/v1/users/me/password"),
    ("patch", "/api/v1/users/{user_id}"),
}
NO_DATABASE = {("get", "/"), ("get", "/api/info"), ("get", "/health"), ("get", "/metrics")}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    from app.main import create_app
    from tests.support.settings import app_settings

    document: dict[str, Any] = create_app(app_settings("sqlite://")).openapi()
    return document


def operations(schema: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    }


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        parts = node["$ref"].removeprefix("#/").split("/")
        for part in parts:
            schema = schema[part]
        node = schema  # type: ignore[assignment]
    return node


def test_operation_ids_are_the_operations_names(schema: dict[str, Any]) -> None:
    found = {key: operation["operationId"] for key, operation in operations(schema).items()}
    assert found == OPERATION_IDS


def test_every_schema_has_a_name_a_person_would_give_it(schema: dict[str, Any]) -> None:
    names = set(schema["components"]["schemas"])
    assert {"TodoSort", "LoginForm", "ServiceInfo", "ApiInfo", "PriorityName"} <= names
    assert not [name for name in names if name.startswith("Body_") or "_api_" in name.lower()]
    login = operations(schema)[("post", "/api/v1/auth/token")]["requestBody"]["content"]
    assert login == {
        "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/LoginForm"}}
    }
    for path in ("/", "/api/info"):
        body = operations(schema)[("get", path)]["responses"]["200"]["content"]
        assert "$ref" in body["application/json"]["schema"], path


def test_every_response_declares_x_request_id(schema: dict[str, Any]) -> None:
    for key, operation in operations(schema).items():
        for status, response in operation["responses"].items():
            header = resolve(schema, response["headers"]["X-Request-ID"])
            assert header["required"] is True, (key, status)
            assert header["description"], (key, status)


def test_every_parameter_of_every_operation_is_described(schema: dict[str, Any]) -> None:
    """Query, path and header parameters alike: what a generated client's docstrings say."""
    undescribed, seen = [], 0
    for key, operation in operations(schema).items():
        for parameter in (resolve(schema, p) for p in operation.get("parameters", [])):
            seen += 1
            if not parameter.get("description", "").strip():
                undescribed.append((*key, parameter["in"], parameter["name"]))
    assert seen > 60
    assert undescribed == []


def test_every_operation_takes_the_clients_request_id(schema: dict[str, Any]) -> None:
    for key, operation in operations(schema).items():
        headers = {
            parameter["name"]: parameter
            for parameter in (resolve(schema, p) for p in operation["parameters"])
            if parameter["in"] == "header"
        }
        request_id = headers["X-Request-ID"]
        assert request_id["required"] is False, key
        assert request_id["schema"] == {"type": "string"}, key  # never refused, only replaced
        assert "1-128 letters" in request_id["description"], key


def test_a_change_is_a_union_discriminated_by_type(schema: dict[str, Any]) -> None:
    """ChangeRead: `type` says what `item` is, so generators narrow a change by it."""
    schemas = schema["components"]["schemas"]
    changes = schemas["ChangePage"]["properties"]["changes"]["items"]
    change = resolve(schema, changes)
    variants = {"list": "ListChange", "todo": "TodoChange"}
    refs = {kind: f"#/components/schemas/{name}" for kind, name in variants.items()}
    assert change["discriminator"] == {"propertyName": "type", "mapping": refs}
    assert sorted(one["$ref"] for one in change["oneOf"]) == sorted(refs.values())
    items = {"list": "ListRead", "todo": "TodoRead"}
    for kind, name in variants.items():
        properties = schemas[name]["properties"]
        assert properties["type"]["const"] == kind
        assert properties["item"]["anyOf"] == [
            {"$ref": f"#/components/schemas/{items[kind]}"},
            {"type": "null"},
        ]
        assert {"type", "id", "deleted", "item"} <= set(schemas[name]["required"])


def test_the_feed_operation_states_the_sync_rules(schema: dict[str, Any]) -> None:
    description = operations(schema)[("get", "/api/v1/changes")]["description"]
    for rule in (
        "next_token",
        "has_more",
        "Tombstones",
        "CHANGES_RETENTION_DAYS",
        "in the order they were committed",
        "a list comes before the todos in it",
        "a todo before its subtasks",
        "may come twice",
        "410",
    ):
        assert rule in description, rule


@pytest.mark.parametrize(
    ("key", "statuses"),
    [
        (("post", "/api/v1/todos"), ["201"]),
        (("get", "/api/v1/todos/{todo_id}"), ["200", "304"]),
        (("patch", "/api/v1/todos/{todo_id}"), ["200"]),
        (("put", "/api/v1/todos/{todo_id}"), ["200"]),
    ],
)
def test_todo_responses_declare_their_etag(
    schema: dict[str, Any], key: tuple[str, str], statuses: list[str]
) -> None:
    responses = operations(schema)[key]["responses"]
    for status in statuses:
        etag = responses[status]["headers"]["ETag"]
        assert etag["required"] is True
        assert etag["schema"] == {"type": "string", "example": '"3"'}
        assert "If-Match" in etag["description"]


@pytest.mark.parametrize("path", ["/api/v1/todos", "/api/v1/lists"])
def test_creates_declare_the_location_of_what_they_made(schema: dict[str, Any], path: str) -> None:
    location = operations(schema)[("post", path)]["responses"]["201"]["headers"]["Location"]
    assert location["required"] is True
    assert location["schema"] == {"type": "string"}
    assert f"{path}/{{id}}" in location["description"]


def test_throttling_and_unavailability_declare_retry_after(schema: dict[str, Any]) -> None:
    seen = 0
    for operation in operations(schema).values():
        for status in ("429", "503"):
            response = operation["responses"].get(status)
            body = response and response["content"]["application/json"]["schema"]
            if body == {"$ref": "#/components/schemas/ErrorBody"}:  # not readiness's own 503
                assert response["headers"]["Retry-After"]["schema"]["type"] == "integer"
                seen += 1
    assert seen > 10


def test_www_authenticate_is_described(schema: dict[str, Any]) -> None:
    for key, operation in operations(schema).items():
        if "401" in operation["responses"]:
            header = operation["responses"]["401"]["headers"]["WWW-Authenticate"]
            assert header["description"] != "Bearer", key
            assert "Bearer" in header["description"], key


def test_413_only_where_a_body_is_read_and_503_only_where_the_database_is(
    schema: dict[str, Any],
) -> None:
    for key, operation in operations(schema).items():
        assert ("413" in operation["responses"]) == (key in WITH_BODY), key
        assert ("503" in operation["responses"]) == (key not in NO_DATABASE), key


@pytest.mark.parametrize(
    ("model", "field"),
    [("UserRegister", "password"), ("PasswordChange", "new_password")],
)
def test_passwords_declare_their_limits(schema: dict[str, Any], model: str, field: str) -> None:
    password = schema["components"]["schemas"][model]["properties"][field]
    # Characters: 8 bytes take at least 2 (of 4 bytes), 72 bytes at most 72 (of 1 byte).
    assert (password["minLength"], password["maxLength"]) == (2, 72)
    assert "8 to 72 bytes in UTF-8" in password["description"]


KEYED_POSTS = [
    "/api/v1/todos",
    "/api/v1/todos/{todo_id}/move",
    "/api/v1/lists",
    "/api/v1/lists/{list_id}/move",
]


@pytest.mark.parametrize("path", KEYED_POSTS)
def test_the_idempotency_key_conflict_is_documented(schema: dict[str, Any], path: str) -> None:
    operation = operations(schema)[("post", path)]
    response = operation["responses"]["422"]
    assert "Idempotency-Key" in response["description"]
    assert response["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HTTPValidationError"
    }
    (header,) = (
        p for p in operation["parameters"] if p.get("name", "").lower() == "idempotency-key"
    )
    assert header["in"] == "header"
    assert (
        header["schema"]["anyOf"][0]["minLength"],
        header["schema"]["anyOf"][0]["maxLength"],
    ) == (
        1,
        255,
    )
    assert "same request" in header["description"]


def test_every_post_under_todos_and_lists_takes_an_idempotency_key(schema: dict[str, Any]) -> None:
    posts = [
        path
        for method, path in operations(schema)
        if method == "post" and path.startswith(("/api/v1/todos", "/api/v1/lists"))
    ]
    assert sorted(posts) == sorted(KEYED_POSTS)


@pytest.mark.parametrize(
    ("path", "model"), [("/api/v1/todos", "TodoCreate"), ("/api/v1/lists", "ListCreate")]
)
def test_a_client_chosen_id_is_documented(schema: dict[str, Any], path: str, model: str) -> None:
    field = schema["components"]["schemas"][model]["properties"]["id"]
    assert {"type": "string", "format": "uuid"} in field["anyOf"]
    assert "409" in field["description"]
    assert "same request again" in field["description"]
    assert "409" in operations(schema)[("post", path)]["responses"]
    assert "TodoCreate" not in str(operations(schema)[("put", "/api/v1/todos/{todo_id}")])


def test_metrics_declares_text(schema: dict[str, Any]) -> None:
    content = operations(schema)[("get", "/metrics")]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]


def test_servers_contact_and_license(schema: dict[str, Any]) -> None:
    assert schema["servers"] == [{"url": "/", "description": "This server"}]
    assert schema["info"]["license"] == {"name": "MIT", "identifier": "MIT"}
    assert schema["info"]["contact"]["name"]


def test_no_content_responses_carry_no_content_type(client: TestClient, user: ApiUser) -> None:
    todo = client.post("/api/v1/todos", json={"title": "x"}, headers=user.headers).json()
    tokens = client.post(
        "/api/v1/auth/token", data={"username": user.email, "password": user.password}
    ).json()
    answers = [
        client.delete(f"/api/v1/todos/{todo['id']}", headers=user.headers),
        client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}),
        client.request(
            "DELETE",
            "/api/v1/users/me",
            json={"current_password": user.password},
            headers=user.headers,
        ),
    ]
    for response in answers:
        assert response.status_code == 204, response.text
        assert "content-type" not in response.headers
        assert response.content == b""


def test_metrics_is_served_as_text(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")


def test_every_api_operation_declares_the_rate_limit_fields_and_429(
    schema: dict[str, Any],
) -> None:
    for (method, path), operation in operations(schema).items():
        responses = operation["responses"]
        if not path.startswith("/api/v1/"):  # never limited (API.md "Rate limits (v1.2)")
            assert not any("RateLimit" in r.get("headers", {}) for r in responses.values())
            continue
        assert responses["429"]["headers"]["Retry-After"]["required"] is True, (method, path)
        for status, response in responses.items():
            for name in ("RateLimit-Policy", "RateLimit"):
                header = resolve(schema, response["headers"][name])
                # Absent when the limits are off or their storage is away: never required.
                assert header["required"] is False, (method, path, status, name)
                assert header["schema"]["pattern"], (method, path, status, name)


def test_the_rate_limit_fields_are_as_declared(
    schema: dict[str, Any], client: TestClient, user: ApiUser
) -> None:
    fields = schema["components"]["headers"]
    answers = [client.get("/api/v1/todos", headers=user.headers), client.get("/api/v1/todos")]
    for response in answers:
        for name in ("RateLimit-Policy", "RateLimit"):
            pattern = fields[name]["schema"]["pattern"]
            assert re.fullmatch(pattern, response.headers[name]), (name, response.headers[name])
