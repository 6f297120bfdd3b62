"""Ids chosen by the client (API.md, offline-first clients): POST /todos and POST /lists with an
`id`. Created with it: 201; the same request again: 201 with the stored object, nothing
changes; the same id with another body, or an id any object has or had: 409, revealing
nothing about another user's object."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from app.client_ids import ClientId
from app.lists.models import TodoList
from app.todos.models import Todo
from tests.changes.helpers import Replica
from tests.conftest import ApiUser, assert_bearer_401, deactivate
from tests.lists.helpers import create_list, create_todo

PATHS = {"todo": "/api/v1/todos", "list": "/api/v1/lists"}
BODIES = {"todo": {"title": "Pay rent", "priority": "high"}, "list": {"name": "Errands"}}
OTHER_BODIES = {"todo": {"title": "Pay the rent", "priority": "high"}, "list": {"name": "Work"}}
KINDS = pytest.mark.parametrize("kind", ["todo", "list"])


def post(
    client: TestClient, user: ApiUser, kind: str, object_id: Any, body: dict[str, Any] | None = None
) -> httpx2.Response:
    sent = {**(BODIES[kind] if body is None else body), "id": str(object_id)}
    return client.post(PATHS[kind], json=sent, headers=user.headers)


def count(engine: Engine, model: type[Todo] | type[TodoList] | type[ClientId]) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(model)) or 0


def objects(engine: Engine, kind: str) -> int:
    """Rows of that kind, not counting the users' default lists."""
    if kind == "todo":
        return count(engine, Todo)
    with engine.connect() as connection:
        query = select(func.count()).select_from(TodoList).where(TodoList.is_default.is_(False))
        return connection.scalar(query) or 0


def assert_conflict(response: httpx2.Response) -> None:
    assert response.status_code == 409, response.text
    assert set(response.json()) == {"detail"}


@KINDS
def test_created_with_the_clients_id(client: TestClient, user: ApiUser, kind: str) -> None:
    object_id = uuid.uuid4()

    created = post(client, user, kind, object_id)

    assert created.status_code == 201, created.text
    assert created.json()["id"] == str(object_id)
    assert created.headers["location"] == f"{PATHS[kind]}/{object_id}"
    fetched = client.get(created.headers["location"], headers=user.headers)
    assert fetched.json() == created.json()
    assert fetched.headers["etag"] == created.headers["etag"]


@KINDS
def test_the_same_request_again_answers_the_object_and_changes_nothing(
    client: TestClient, user: ApiUser, db_engine: Engine, kind: str
) -> None:
    object_id = uuid.uuid4()
    first = post(client, user, kind, object_id)
    replica = Replica(user)
    replica.sync(client)

    again = post(client, user, kind, object_id)

    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["location"] == first.headers["location"]
    assert objects(db_engine, kind) == 1
    assert replica.news(client) == []  # no new feed entry


def test_the_same_request_again_after_an_edit_answers_the_object_as_it_is(
    client: TestClient, user: ApiUser
) -> None:
    object_id = uuid.uuid4()
    post(client, user, "todo", object_id)
    edited = client.patch(
        f"/api/v1/todos/{object_id}", json={"completed": True}, headers=user.headers
    )

    again = post(client, user, "todo", object_id)

    assert again.status_code == 201, again.text
    assert again.json() == edited.json()
    assert again.headers["etag"] == edited.headers["etag"]


@pytest.mark.parametrize(
    ("first", "again"),
    [
        ({"title": "Pay rent"}, {"title": "  Pay rent ", "priority": "normal"}),
        ({"title": "Pay rent", "completed": False}, {"title": "Pay rent", "description": None}),
    ],
)
def test_an_omitted_field_is_the_same_as_its_default(
    client: TestClient,
    user: ApiUser,
    db_engine: Engine,
    first: dict[str, Any],
    again: dict[str, Any],
) -> None:
    object_id = uuid.uuid4()
    created = post(client, user, "todo", object_id, first)

    repeated = post(client, user, "todo", object_id, again)

    assert repeated.status_code == 201, repeated.text
    assert repeated.json() == created.json()
    assert count(db_engine, Todo) == 1


@KINDS
def test_the_same_id_with_another_body_is_409_and_changes_nothing(
    client: TestClient, user: ApiUser, db_engine: Engine, kind: str
) -> None:
    object_id = uuid.uuid4()
    first = post(client, user, kind, object_id)

    assert_conflict(post(client, user, kind, object_id, OTHER_BODIES[kind]))

    current = client.get(first.headers["location"], headers=user.headers)
    assert current.json() == first.json()
    assert current.headers["etag"] == first.headers["etag"]
    assert objects(db_engine, kind) == 1


@pytest.mark.parametrize(("first", "second"), [("todo", "list"), ("list", "todo")])
def test_an_id_of_the_other_kind_is_409(
    client: TestClient, user: ApiUser, db_engine: Engine, first: str, second: str
) -> None:
    object_id = uuid.uuid4()
    assert post(client, user, first, object_id).status_code == 201

    assert_conflict(post(client, user, second, object_id))
    assert objects(db_engine, second) == 0


def test_ids_the_server_chose_are_taken(client: TestClient, user: ApiUser) -> None:
    todo, work = create_todo(client, user), create_list(client, user)

    for kind in ("todo", "list"):
        for object_id in (todo["id"], work["id"]):
            assert_conflict(post(client, user, kind, object_id))


@KINDS
def test_a_deleted_objects_id_stays_taken(
    client: TestClient, user: ApiUser, db_engine: Engine, kind: str
) -> None:
    server_named = (create_todo if kind == "todo" else create_list)(client, user)["id"]
    client_named = uuid.uuid4()
    assert post(client, user, kind, client_named).status_code == 201
    for object_id in (server_named, client_named):
        deleted = client.delete(f"{PATHS[kind]}/{object_id}", headers=user.headers)
        assert deleted.status_code == 204

    for object_id in (server_named, client_named):
        # Also the very request that created it: the object it names is gone.
        assert_conflict(post(client, user, kind, object_id))
        assert_conflict(post(client, user, "list" if kind == "todo" else "todo", object_id))
    assert objects(db_engine, kind) == 0


@KINDS
def test_another_users_ids_are_409_and_reveal_nothing(
    client: TestClient, user: ApiUser, other_user: ApiUser, db_engine: Engine, kind: str
) -> None:
    theirs_by_server = (create_todo if kind == "todo" else create_list)(client, other_user)
    theirs_by_client = post(client, other_user, kind, uuid.uuid4()).json()
    mine = uuid.uuid4()
    assert post(client, user, kind, mine).status_code == 201
    own_conflict = post(client, user, kind, mine, OTHER_BODIES[kind])
    assert_conflict(own_conflict)

    for theirs in (theirs_by_server, theirs_by_client):
        for sent_kind in ("todo", "list"):
            # Even their exact request: the id is theirs.
            body = {k: v for k, v in theirs.items() if k in BODIES[sent_kind]}
            response = post(client, user, sent_kind, theirs["id"], body or None)
            assert_conflict(response)
            # The same answer as for a conflict with one's own object: nothing about theirs.
            assert response.json() == own_conflict.json()
        fetched = client.get(f"{PATHS[kind]}/{theirs['id']}", headers=other_user.headers)
        assert fetched.json() == theirs
    assert objects(db_engine, kind) == 3


def test_a_user_who_may_not_act_gets_401_and_the_id_stays_free(
    client: TestClient, user: ApiUser, other_user: ApiUser, db_engine: Engine
) -> None:
    object_id = uuid.uuid4()
    deactivate(db_engine, user.id)

    assert_bearer_401(post(client, user, "todo", object_id))
    assert count(db_engine, ClientId) == 0
    assert post(client, other_user, "todo", object_id).status_code == 201


@KINDS
def test_an_id_that_is_not_a_uuid_is_422(client: TestClient, user: ApiUser, kind: str) -> None:
    response = post(client, user, kind, "not-a-uuid")

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "id"]


def test_todos_of_a_list_the_client_named_go_into_it(client: TestClient, user: ApiUser) -> None:
    """An offline client's list and its todos, sent later in any order of retries."""
    list_id, todo_id = uuid.uuid4(), uuid.uuid4()
    body = {"title": "Milk", "list_id": str(list_id)}
    assert post(client, user, "list", list_id).status_code == 201
    for _ in range(2):
        created = post(client, user, "todo", todo_id, body)
        assert created.status_code == 201, created.text
        assert created.json()["list_id"] == str(list_id)
    for _ in range(2):
        assert post(client, user, "list", list_id).status_code == 201


def test_the_id_with_an_idempotency_key(client: TestClient, user: ApiUser) -> None:
    object_id = uuid.uuid4()
    headers = {**user.headers, "Idempotency-Key": "with-an-id"}
    sent = {"title": "Keyed", "id": str(object_id)}
    first = client.post("/api/v1/todos", json=sent, headers=headers)
    again = client.post("/api/v1/todos", json=sent, headers=headers)
    unkeyed = post(client, user, "todo", object_id, {"title": "Keyed"})

    assert first.status_code == again.status_code == unkeyed.status_code == 201
    assert first.json()["id"] == str(object_id)
    assert again.content == first.content == unkeyed.content


@KINDS
def test_concurrent_identical_creates_make_one_object(
    client: TestClient, user: ApiUser, db_engine: Engine, kind: str
) -> None:
    requests = 50
    object_id = uuid.uuid4()
    start = threading.Barrier(requests)

    def attempt(_: int) -> httpx2.Response:
        start.wait(timeout=30)  # released together, to race for the id
        return post(client, user, kind, object_id)

    with ThreadPoolExecutor(max_workers=requests) as pool:
        responses = list(pool.map(attempt, range(requests)))

    assert [r.status_code for r in responses] == [201] * requests, [r.text for r in responses]
    assert len({r.content for r in responses}) == 1
    assert len({r.headers["etag"] for r in responses}) == 1
    assert responses[0].json()["id"] == str(object_id)
    assert objects(db_engine, kind) == 1
    assert count(db_engine, ClientId) == 1


def test_concurrent_creates_of_both_kinds_with_one_id_make_one_object(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    requests = 20
    object_id = uuid.uuid4()
    start = threading.Barrier(requests)

    def attempt(i: int) -> httpx2.Response:
        start.wait(timeout=30)
        return post(client, user, "todo" if i % 2 else "list", object_id)

    with ThreadPoolExecutor(max_workers=requests) as pool:
        responses = list(pool.map(attempt, range(requests)))

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) == {201, 409}, [r.text for r in responses]
    assert objects(db_engine, "todo") + objects(db_engine, "list") == 1
    winners = {r.json()["id"] for r in responses if r.status_code == 201}
    assert winners == {str(object_id)}
    assert len({r.content for r in responses if r.status_code == 201}) == 1
