"""No authenticated route can skip the access rule (app.accounts.access) without a test failing.

The routes come from the app itself, not from a list kept here: every route whose
dependencies include the bearer scheme is called with the token of a user who may no longer
act (deactivated, deleted, or whose password changed since the token was issued) and must
answer 401. The request is otherwise one the route accepts (a valid body, the user's own
todo, a superuser for the admin routes), so no other check can answer first; the first test
shows that for each route.
"""

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import Engine, delete, update

from app.accounts.dependencies import Claims, oauth2_scheme
from app.accounts.models import User
from app.accounts.schemas import (
    AccountDeletion,
    PasswordChange,
    UserAdminUpdate,
    UserRegister,
    UserUpdateMe,
)
from app.lists.schemas import ListCreate, ListUpdate, MoveList
from app.todos.schemas import MoveTodo, TodoCreate, TodoReplace, TodoUpdate
from tests.conftest import PASSWORD, ApiUser, assert_bearer_401, deactivate, login, make_user

NEW_PASSWORD = "new-staple-horse-battery"
# A valid body per request model. A route with a body model missing here fails loudly
# (KeyError in request_for), so a new route cannot slip through by getting a 422 first.
VALID_BODIES: dict[type, Callable[[], dict[str, Any]]] = {
    TodoCreate: lambda: {"title": "a todo"},
    TodoReplace: lambda: {"title": "replaced"},
    TodoUpdate: lambda: {"title": "renamed"},
    MoveTodo: lambda: {"after": None},
    ListCreate: lambda: {"name": "a list"},
    ListUpdate: lambda: {"name": "renamed"},
    MoveList: lambda: {"after": None},
    UserUpdateMe: lambda: {"full_name": "A. Name"},
    UserAdminUpdate: lambda: {"full_name": "A. Name"},
    PasswordChange: lambda: {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    AccountDeletion: lambda: {"current_password": PASSWORD},
    UserRegister: lambda: {"email": f"{uuid.uuid4().hex}@example.com", "password": PASSWORD},
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    body_model: type | None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _uses_bearer(dependant: Dependant) -> bool:
    return any(sub.call is oauth2_scheme or _uses_bearer(sub) for sub in dependant.dependencies)


def authenticated_endpoints(app: FastAPI) -> Iterator[Endpoint]:
    for route in app.routes:
        if not isinstance(route, APIRoute) or not _uses_bearer(route.dependant):
            continue
        body = route.body_field.field_info.annotation if route.body_field else None
        for method in sorted(route.methods or ()):
            yield Endpoint(method, str(route.path_format), body)


@dataclass
class Victim:
    """A superuser (so admin routes get past their 403) with a todo and a (deletable) list
    of their own."""

    user: ApiUser
    todo_id: str
    list_id: str


def make_victim(client: TestClient, db_engine: Engine) -> Victim:
    user = make_user(client)
    with db_engine.begin() as connection:
        connection.execute(
            update(User).where(User.id == uuid.UUID(user.id)).values(is_superuser=True)
        )
    todo = client.post("/api/v1/todos", json={"title": "mine"}, headers=user.headers)
    assert todo.status_code == 201, todo.text
    todo_list = client.post("/api/v1/lists", json={"name": "mine"}, headers=user.headers)
    assert todo_list.status_code == 201, todo_list.text
    return Victim(user, todo.json()["id"], todo_list.json()["id"])


def request_for(client: TestClient, endpoint: Endpoint, victim: Victim) -> Response:
    path = endpoint.path.format(
        todo_id=victim.todo_id, user_id=victim.user.id, list_id=victim.list_id
    )
    body = VALID_BODIES[endpoint.body_model]() if endpoint.body_model else None
    return client.request(endpoint.method, path, json=body, headers=victim.user.headers)


def revoke_by_deactivation(client: TestClient, db_engine: Engine, victim: Victim) -> None:
    deactivate(db_engine, victim.user.id)


def revoke_by_deletion(client: TestClient, db_engine: Engine, victim: Victim) -> None:
    with db_engine.begin() as connection:
        connection.execute(delete(User).where(User.id == uuid.UUID(victim.user.id)))


def revoke_by_password_change(client: TestClient, db_engine: Engine, victim: Victim) -> None:
    other_login = {"Authorization": f"Bearer {login(client, victim.user.email)['access_token']}"}
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    changed = client.post("/api/v1/users/me/password", json=body, headers=other_login)
    assert changed.status_code == 204, changed.text


REVOCATIONS = {
    "deactivated": revoke_by_deactivation,
    "deleted": revoke_by_deletion,
    "password_changed": revoke_by_password_change,
}


def endpoints_not_refusing(
    client: TestClient, app: FastAPI, db_engine: Engine, revocation: str
) -> list[str]:
    """Every authenticated endpoint that did not answer 401 to a revoked token."""
    revoke = REVOCATIONS[revocation]
    failures = []
    for endpoint in authenticated_endpoints(app):
        victim = make_victim(client, db_engine)
        revoke(client, db_engine, victim)
        response = request_for(client, endpoint, victim)
        try:
            assert_bearer_401(response)
        except AssertionError:
            failures.append(f"{endpoint}: {response.status_code} {response.text[:100]}")
    return failures


def test_the_app_has_the_authenticated_routes_of_the_contract(app: FastAPI) -> None:
    found = {str(endpoint) for endpoint in authenticated_endpoints(app)}
    assert {
        "GET /api/v1/todos",
        "DELETE /api/v1/todos/{todo_id}",
        "GET /api/v1/labels",
        "POST /api/v1/users/me/password",
        "PATCH /api/v1/users/{user_id}",
    } <= found
    assert "POST /api/v1/auth/token" not in found
    assert len(found) >= 13, found


def test_every_authenticated_route_accepts_the_request_built_for_it(
    client: TestClient, app: FastAPI, db_engine: Engine
) -> None:
    for endpoint in authenticated_endpoints(app):
        victim = make_victim(client, db_engine)
        response = request_for(client, endpoint, victim)
        assert response.status_code < 400, (str(endpoint), response.text)


@pytest.mark.parametrize("revocation", sorted(REVOCATIONS))
def test_every_authenticated_route_refuses_a_revoked_token(
    client: TestClient, app: FastAPI, db_engine: Engine, revocation: str
) -> None:
    assert endpoints_not_refusing(client, app, db_engine, revocation) == []


def test_a_route_that_forgets_the_rule_is_caught(
    client: TestClient, app: FastAPI, db_engine: Engine
) -> None:
    @app.get("/api/v1/leaky")
    async def leaky(claims: Claims) -> dict[str, str]:
        return {"user": str(claims.user_id)}  # the JWT checked, the user never looked at

    for revocation in REVOCATIONS:
        failures = endpoints_not_refusing(client, app, db_engine, revocation)
        assert [failure.split(":")[0] for failure in failures] == ["GET /api/v1/leaky"]
