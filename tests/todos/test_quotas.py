"""Account quotas (issue 29 HIGH 2, API.md v1.2): MAX_TODOS_PER_USER and MAX_LISTS_PER_USER.

A create past the quota is 403 naming the limit and stores nothing; deleting frees room;
concurrent creates never overshoot. Small quotas here; the defaults are in test_config."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from app.config import Settings
from app.lists.models import TodoList
from app.todos.models import Todo
from tests.conftest import ApiUser, make_user
from tests.lists.helpers import create_list, create_todo

MAX_TODOS, MAX_LISTS = 5, 3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"max_todos_per_user": MAX_TODOS, "max_lists_per_user": MAX_LISTS}
    )


def _count(engine: Engine, model: type[Todo] | type[TodoList], user: ApiUser) -> int:
    with engine.connect() as connection:
        owner = model.owner_id == uuid.UUID(user.id)
        return connection.scalar(select(func.count()).select_from(model).where(owner)) or 0


def _post_todo(client: TestClient, user: ApiUser, **headers: str) -> Any:
    return client.post("/api/v1/todos", json={"title": "t"}, headers={**user.headers, **headers})


def test_todos_past_the_quota_are_403_and_deleting_frees_room(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    todos = [create_todo(client, user) for _ in range(MAX_TODOS)]
    refused = _post_todo(client, user)
    assert refused.status_code == 403, refused.text
    assert "MAX_TODOS_PER_USER" in refused.json()["detail"]
    assert str(MAX_TODOS) in refused.json()["detail"]
    keyed = _post_todo(client, user, **{"Idempotency-Key": "over-quota"})
    assert keyed.status_code == 403, keyed.text
    work = create_list(client, user)
    into_list = client.post(
        "/api/v1/todos", json={"title": "t", "list_id": work["id"]}, headers=user.headers
    )
    assert into_list.status_code == 403
    assert _count(db_engine, Todo, user) == MAX_TODOS
    # Another account has its own quota.
    other = make_user(client)
    assert _post_todo(client, other).status_code == 201
    # Deleting a todo, or a list with todos in it, frees room.
    deleted = client.delete(f"/api/v1/todos/{todos[0]['id']}", headers=user.headers)
    assert deleted.status_code == 204
    moved = client.patch(
        f"/api/v1/todos/{todos[1]['id']}", json={"list_id": work["id"]}, headers=user.headers
    )
    assert moved.status_code == 200  # moving between lists is no create
    assert _post_todo(client, user, **{"Idempotency-Key": "now-room"}).status_code == 201
    assert _post_todo(client, user).status_code == 403
    assert client.delete(f"/api/v1/lists/{work['id']}", headers=user.headers).status_code == 204
    assert [_post_todo(client, user).status_code for _ in range(2)] == [201, 403]
    assert _count(db_engine, Todo, user) == MAX_TODOS


def test_lists_past_the_quota_are_403_and_deleting_frees_room(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    lists = [create_list(client, user) for _ in range(MAX_LISTS - 1)]  # and the default list
    refused = client.post("/api/v1/lists", json={"name": "one more"}, headers=user.headers)
    assert refused.status_code == 403, refused.text
    assert "MAX_LISTS_PER_USER" in refused.json()["detail"]
    assert _count(db_engine, TodoList, user) == MAX_LISTS
    assert client.delete(f"/api/v1/lists/{lists[0]['id']}", headers=user.headers).status_code == 204
    create_list(client, user)
    assert _count(db_engine, TodoList, user) == MAX_LISTS


@pytest.mark.parametrize("kind", ["todos", "lists", "keyed todos"])
def test_concurrent_creates_never_overshoot_the_quota(
    client: TestClient, user: ApiUser, db_engine: Engine, kind: str
) -> None:
    requests = 16
    start = threading.Barrier(requests)

    def attempt(i: int) -> int:
        start.wait(timeout=30)
        if kind == "lists":
            body, path = {"name": f"l{i}"}, "/api/v1/lists"
        else:
            body, path = {"title": f"t{i}"}, "/api/v1/todos"
        headers = {
            **user.headers,
            **({"Idempotency-Key": f"k{i}"} if kind == "keyed todos" else {}),
        }
        return client.post(path, json=body, headers=headers).status_code

    with ThreadPoolExecutor(max_workers=requests) as pool:
        statuses = list(pool.map(attempt, range(requests)))
    room = MAX_LISTS - 1 if kind == "lists" else MAX_TODOS
    assert sorted(statuses) == [201] * room + [403] * (requests - room), statuses
    model = TodoList if kind == "lists" else Todo
    assert _count(db_engine, model, user) == (MAX_LISTS if kind == "lists" else MAX_TODOS)
