"""Conditional requests and writes that change nothing (spec/API.md, Todos, after the ETag rule).

A GET with If-None-Match matching the current ETag is 304 with the ETag and no body. A write
that changes no stored value is 200 with the current body and the same ETag, and updated_at
does not move: another client's If-Match still holds.
"""

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.accounts.models import RefreshToken, User
from tests.conftest import PASSWORD, ApiUser, login
from tests.todos.helpers import (
    FULL,
    assert_precondition_failed,
    assert_validation_error,
    create,
    fetch,
    send,
)


def get(client: TestClient, user: ApiUser, todo_id: str, if_none_match: str) -> Any:
    return client.get(
        f"/api/v1/todos/{todo_id}", headers={**user.headers, "If-None-Match": if_none_match}
    )


# --- If-None-Match ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    ["{etag}", "W/{etag}", "*", '"999999", {etag}', 'W/"1234",  W/{etag} ,"x"'],
)
def test_if_none_match_with_the_current_etag_is_304_without_a_body(
    client: TestClient, user: ApiUser, header: str
) -> None:
    todo = create(client, user)
    etag = fetch(client, user, todo["id"]).headers["etag"]

    response = get(client, user, todo["id"], header.format(etag=etag))

    assert response.status_code == 304, response.text
    assert response.headers["etag"] == etag
    assert response.content == b""
    assert "content-type" not in response.headers
    assert response.headers["cache-control"] == "private, no-cache"


@pytest.mark.parametrize("header", ['"999999"', 'W/"0"', "garbage", '"2", "1x"', '"01"'])
def test_if_none_match_with_another_etag_is_the_todo(
    client: TestClient, user: ApiUser, header: str
) -> None:
    todo = create(client, user)

    response = get(client, user, todo["id"], header)

    assert response.status_code == 200, response.text
    assert response.json() == todo


def test_if_none_match_after_a_write_is_the_new_todo(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user)
    old = fetch(client, user, todo["id"]).headers["etag"]
    changed = send(client, user, "PATCH", todo["id"], {"title": "New"})

    response = get(client, user, todo["id"], old)

    assert response.status_code == 200
    assert response.json() == changed.json()
    assert response.headers["etag"] == changed.headers["etag"] != old


@pytest.mark.parametrize("header", ["*", '"1"'])
def test_if_none_match_does_not_reveal_missing_or_foreign_todos(
    client: TestClient, user: ApiUser, other_user: ApiUser, header: str
) -> None:
    theirs = create(client, other_user)
    for todo_id in (theirs["id"], str(uuid.uuid4())):
        response = get(client, user, todo_id, header)
        assert response.status_code == 404, response.text


# --- writes that change nothing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("PATCH", {}),
        ("PATCH", {"title": FULL["title"]}),
        ("PATCH", {"title": f"  {FULL['title']} "}),  # stored trimmed: the same value
        ("PATCH", {"due_date": "2031-05-06T09:08:09+02:00"}),  # the same instant
        ("PATCH", FULL),
        ("PUT", FULL),
    ],
)
def test_a_write_that_changes_nothing_keeps_the_etag_and_updated_at(
    client: TestClient, user: ApiUser, method: str, body: dict[str, Any]
) -> None:
    todo = create(client, user, **FULL)
    etag = fetch(client, user, todo["id"]).headers["etag"]

    response = send(client, user, method, todo["id"], body)

    assert response.status_code == 200, response.text
    assert response.json() == todo
    assert response.headers["etag"] == etag
    assert fetch(client, user, todo["id"]).json() == todo
    # Another client's If-Match still holds.
    assert send(client, user, "PATCH", todo["id"], {"title": "Next"}, if_match=etag).is_success


@pytest.mark.parametrize(("method", "body"), [("PATCH", {}), ("PUT", {"title": "Buy milk"})])
def test_a_no_op_write_with_a_stale_if_match_is_412(
    client: TestClient, user: ApiUser, method: str, body: dict[str, Any]
) -> None:
    todo = create(client, user)
    stale = fetch(client, user, todo["id"]).headers["etag"]
    current = send(client, user, "PATCH", todo["id"], {"title": "Buy milk"})  # a no-op
    assert current.headers["etag"] == stale
    changed = send(client, user, "PATCH", todo["id"], {"description": "now changed"})
    # Back to the body sent below, in a new version: the stale tag must still fail.
    restored = send(client, user, "PATCH", todo["id"], {"description": None})
    assert restored.headers["etag"] not in (stale, changed.headers["etag"])

    response = send(client, user, method, todo["id"], body, if_match=stale)

    assert_precondition_failed(response)
    assert send(
        client, user, method, todo["id"], body, if_match=restored.headers["etag"]
    ).is_success


@pytest.mark.parametrize(("method", "body"), [("PATCH", {}), ("PUT", {"title": "Buy milk"})])
def test_a_no_op_write_to_a_missing_or_foreign_todo_is_404(
    client: TestClient, user: ApiUser, other_user: ApiUser, method: str, body: dict[str, Any]
) -> None:
    theirs = create(client, other_user)
    for todo_id in (theirs["id"], str(uuid.uuid4())):
        assert send(client, user, method, todo_id, body).status_code == 404


def test_a_put_that_resets_a_field_is_a_change(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user, **FULL)
    etag = fetch(client, user, todo["id"]).headers["etag"]

    response = send(client, user, "PUT", todo["id"], {"title": FULL["title"]})

    assert response.status_code == 200
    assert response.headers["etag"] != etag
    assert response.json()["priority"] == "normal"
    assert response.json()["updated_at"] != todo["updated_at"]


# --- unknown fields ---------------------------------------------------------------------------

NEW_PASSWORD = "a-different-good-password"


def accounts(db_engine: Engine) -> tuple[list[Any], list[Any]]:
    """Every user row (profile, password hash, generation) and every refresh token row."""
    with db_engine.connect() as connection:
        users = connection.execute(sa.select(User).order_by(User.id)).all()
        tokens = connection.execute(sa.select(RefreshToken).order_by(RefreshToken.id)).all()
    return [tuple(row) for row in users], [tuple(row) for row in tokens]


# Each body is a valid request plus one unknown field: were the field ignored rather than
# refused, the request would change something (a todo, the profile, the password, a user,
# the refresh tokens), and the checks after it would see the change.
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/todos", {"title": "x", "complete": True}),
        ("PATCH", "/api/v1/todos/{id}", {"title": "changed", "complete": True}),
        ("PUT", "/api/v1/todos/{id}", {"title": "x", "complete": True}),
        ("PATCH", "/api/v1/users/me", {"full_name": "Changed", "complete": True}),
        (
            "POST",
            "/api/v1/users/me/password",
            {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "complete": True},
        ),
        (
            "POST",
            "/api/v1/auth/register",
            {"email": "unknown-field@example.com", "password": PASSWORD, "complete": True},
        ),
        ("POST", "/api/v1/auth/refresh", {"refresh_token": "{refresh}", "complete": True}),
        ("POST", "/api/v1/auth/logout", {"refresh_token": "{refresh}", "complete": True}),
    ],
)
def test_an_unknown_field_in_a_body_is_422_naming_it_and_changes_nothing(
    client: TestClient,
    user: ApiUser,
    db_engine: Engine,
    method: str,
    path: str,
    body: dict[str, Any],
) -> None:
    todo = create(client, user)
    etag = fetch(client, user, todo["id"]).headers["etag"]
    body = {
        k: v.format(refresh=user.refresh_token) if isinstance(v, str) else v
        for k, v in body.items()
    }
    before = accounts(db_engine)

    response = client.request(method, path.format(id=todo["id"]), json=body, headers=user.headers)

    errors = assert_validation_error(response)
    assert ["body", "complete"] in [error["loc"] for error in errors], errors
    assert fetch(client, user, todo["id"]).headers["etag"] == etag
    assert client.get("/api/v1/todos", headers=user.headers).json()["items"] == [todo]
    assert accounts(db_engine) == before
    # The password and the refresh token still work as they did.
    assert login(client, user.email)["access_token"]
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 200, refreshed.text
