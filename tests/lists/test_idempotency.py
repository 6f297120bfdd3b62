"""Idempotency-Key on POST /api/v1/lists and POST /api/v1/lists/{id}/move, with the rules of
POST /todos: a retry replays the first response and changes nothing; the same key with another
request (another body, or another route) is 422; keys are per user."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from app.idempotency.models import IdempotencyKey
from app.lists.models import TodoList
from tests.conftest import ApiUser
from tests.lists.helpers import create_list


def keyed(
    client: TestClient, user: ApiUser, path: str, body: dict[str, Any], key: str
) -> httpx2.Response:
    headers = {**user.headers, "Idempotency-Key": key}
    return client.post(f"/api/v1/lists{path}", json=body, headers=headers)


def own_lists(engine: Engine) -> int:
    with engine.connect() as connection:
        query = select(func.count()).select_from(TodoList).where(TodoList.is_default.is_(False))
        return connection.scalar(query) or 0


def order(client: TestClient, user: ApiUser) -> list[str]:
    response = client.get("/api/v1/lists", params={"limit": 100}, headers=user.headers)
    return [item["name"] for item in response.json()["items"]]


def assert_replayed(first: httpx2.Response, retry: httpx2.Response, status: int) -> None:
    assert first.status_code == retry.status_code == status, (first.text, retry.text)
    assert retry.content == first.content
    assert retry.headers["etag"] == first.headers["etag"]


def assert_key_reused(response: httpx2.Response) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


def test_a_retried_create_replays_the_first_response(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    first = keyed(client, user, "", {"name": "Errands"}, "create-1")
    retry = keyed(client, user, "", {"name": "Errands"}, "create-1")

    assert_replayed(first, retry, 201)
    assert retry.headers["location"] == first.headers["location"]
    assert first.headers["location"] == f"/api/v1/lists/{first.json()['id']}"
    assert own_lists(db_engine) == 1


def test_the_same_key_with_another_body_is_422(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    first = keyed(client, user, "", {"name": "Errands"}, "create-2")

    assert_key_reused(keyed(client, user, "", {"name": "Work"}, "create-2"))
    assert own_lists(db_engine) == 1
    assert_replayed(first, keyed(client, user, "", {"name": "Errands"}, "create-2"), 201)


def test_keys_are_per_user(client: TestClient, user: ApiUser, other_user: ApiUser) -> None:
    mine = keyed(client, user, "", {"name": "Mine"}, "shared")
    theirs = keyed(client, other_user, "", {"name": "Theirs"}, "shared")

    assert mine.status_code == theirs.status_code == 201
    assert order(client, other_user) == ["Inbox", "Theirs"]


def test_a_retried_move_replays_the_first_response_and_moves_nothing(
    client: TestClient, user: ApiUser
) -> None:
    a, _, c = (create_list(client, user, name) for name in ("A", "B", "C"))
    first = keyed(client, user, f"/{c['id']}/move", {"after": None}, "move-1")
    assert order(client, user) == ["C", "Inbox", "A", "B"]
    # Someone moves A to the front in between: the retry must not put C back first.
    moved = client.post(f"/api/v1/lists/{a['id']}/move", json={"after": None}, headers=user.headers)
    assert moved.status_code == 200

    retry = keyed(client, user, f"/{c['id']}/move", {"after": None}, "move-1")

    assert_replayed(first, retry, 200)
    assert order(client, user) == ["A", "C", "Inbox", "B"]


def test_the_same_key_on_another_route_is_422(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    a, b = create_list(client, user, "A"), create_list(client, user, "B")
    created = keyed(client, user, "", {"name": "C"}, "one-key")
    moved = keyed(client, user, f"/{a['id']}/move", {"after": None}, "other-key")
    assert (created.status_code, moved.status_code) == (201, 200)

    # The create's key on a move, the move's key on another list's move and on a create,
    # and a list's key on a todo's create.
    assert_key_reused(keyed(client, user, f"/{a['id']}/move", {"after": None}, "one-key"))
    assert_key_reused(keyed(client, user, f"/{b['id']}/move", {"after": None}, "other-key"))
    assert_key_reused(keyed(client, user, "", {"name": "C"}, "other-key"))
    headers = {**user.headers, "Idempotency-Key": "one-key"}
    assert_key_reused(client.post("/api/v1/todos", json={"title": "C"}, headers=headers))
    assert order(client, user) == ["A", "Inbox", "B", "C"]
    assert own_lists(db_engine) == 3


def test_a_move_with_another_if_match_is_another_request(client: TestClient, user: ApiUser) -> None:
    a = create_list(client, user, "A")
    path = f"/{a['id']}/move"
    first = client.post(
        f"/api/v1/lists{path}",
        json={"after": None},
        headers={**user.headers, "Idempotency-Key": "if-match", "If-Match": '"1"'},
    )
    assert first.status_code == 200, first.text

    assert_key_reused(keyed(client, user, path, {"after": None}, "if-match"))


def test_a_failed_move_does_not_use_up_the_key(client: TestClient, user: ApiUser) -> None:
    a = create_list(client, user, "A")
    path = f"/{a['id']}/move"
    failed = keyed(client, user, path, {"after": str(uuid.uuid4())}, "after-422")
    assert failed.status_code == 422

    moved = keyed(client, user, path, {"after": None}, "after-422")

    assert moved.status_code == 200, moved.text
    assert order(client, user) == ["A", "Inbox"]


def test_concurrent_retries_of_a_move_move_once(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    create_list(client, user, "A")
    c = create_list(client, user, "C")
    requests = 10
    start = threading.Barrier(requests)

    def attempt(_: int) -> httpx2.Response:
        start.wait(timeout=30)
        return keyed(client, user, f"/{c['id']}/move", {"after": None}, "concurrent-move")

    with ThreadPoolExecutor(max_workers=requests) as pool:
        responses = list(pool.map(attempt, range(requests)))

    assert [r.status_code for r in responses] == [200] * requests, [r.text for r in responses]
    assert len({r.content for r in responses}) == 1
    assert {r.headers["etag"] for r in responses} == {'"2"'}  # moved once
    assert order(client, user) == ["C", "Inbox", "A"]
    with db_engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(IdempotencyKey)) == 1
