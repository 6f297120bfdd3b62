"""Todos in lists and in the user's order: list_id, position, move, sort=position."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update

from app.lists import renumber
from app.lists.models import TodoList
from app.lists.positions import key_between
from app.todos.models import Todo
from tests.conftest import ApiUser
from tests.lists.helpers import create_list, create_todo, insert_todos


def inbox_id(client: TestClient, user: ApiUser) -> str:
    items = client.get("/api/v1/lists", headers=user.headers).json()["items"]
    (default,) = [item["id"] for item in items if item["is_default"]]
    return str(default)


def in_order(client: TestClient, user: ApiUser, list_id: str, limit: int = 100) -> list[str]:
    """Walk ?list_id=&sort=position with cursors; the ids in order."""
    ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"list_id": list_id, "sort": "position", "limit": limit}
        response = client.get(
            "/api/v1/todos", params=params | ({"cursor": cursor} if cursor else {}),
            headers=user.headers,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        ids += [item["id"] for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return ids


def move(client: TestClient, user: ApiUser, todo_id: str, after: str | None, **extra: Any) -> Any:
    headers = {**user.headers, **extra.pop("headers", {})}
    return client.post(
        f"/api/v1/todos/{todo_id}/move", json={"after": after, **extra}, headers=headers
    )


def test_a_new_todo_goes_to_the_end_of_the_default_list(client: TestClient, user: ApiUser) -> None:
    first, second = create_todo(client, user), create_todo(client, user)
    inbox = inbox_id(client, user)
    assert first["list_id"] == second["list_id"] == inbox
    assert first["position"] < second["position"]
    assert in_order(client, user, inbox) == [first["id"], second["id"]]


def test_a_todo_created_in_a_list_goes_to_its_end(client: TestClient, user: ApiUser) -> None:
    work = create_list(client, user)
    items = [create_todo(client, user, list_id=work["id"]) for _ in range(3)]
    assert {item["list_id"] for item in items} == {work["id"]}
    assert in_order(client, user, work["id"]) == [item["id"] for item in items]


def test_a_missing_or_foreign_list_id_is_the_same_422(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    theirs = create_list(client, other_user)
    mine = create_todo(client, user)
    answers = []
    for list_id in (theirs["id"], str(uuid.uuid4())):
        answers.append(
            client.post(
                "/api/v1/todos", json={"title": "x", "list_id": list_id}, headers=user.headers
            )
        )
        answers.append(
            client.patch(
                f"/api/v1/todos/{mine['id']}", json={"list_id": list_id}, headers=user.headers
            )
        )
        answers.append(move(client, user, mine["id"], None, list_id=list_id))
    assert [a.status_code for a in answers] == [422] * 6
    assert len({a.text for a in answers}) == 1  # the same body for a missing and a foreign list
    assert client.get("/api/v1/todos", headers=user.headers).json()["items"] == [
        client.get(f"/api/v1/todos/{mine['id']}", headers=user.headers).json()
    ]
    assert in_order(client, other_user, theirs["id"]) == []


@pytest.mark.parametrize("list_id", ["nope", 5, None])
def test_a_list_id_that_is_not_a_uuid_is_422(
    client: TestClient, user: ApiUser, list_id: Any
) -> None:
    mine = create_todo(client, user)
    url = f"/api/v1/todos/{mine['id']}"
    assert client.patch(url, json={"list_id": list_id}, headers=user.headers).status_code == 422
    if list_id is not None:
        body = {"title": "x", "list_id": list_id}
        assert client.post("/api/v1/todos", json=body, headers=user.headers).status_code == 422
        params = {"list_id": list_id}
        assert client.get("/api/v1/todos", params=params, headers=user.headers).status_code == 422


def test_patch_to_another_list_moves_to_its_end_and_the_same_list_stays(
    client: TestClient, user: ApiUser
) -> None:
    work = create_list(client, user)
    there = create_todo(client, user, list_id=work["id"])
    moving, staying = create_todo(client, user), create_todo(client, user)
    url = f"/api/v1/todos/{moving['id']}"
    response = client.patch(url, json={"list_id": work["id"]}, headers=user.headers)
    assert response.status_code == 200
    assert response.json()["list_id"] == work["id"]
    assert in_order(client, user, work["id"]) == [there["id"], moving["id"]]
    assert in_order(client, user, inbox_id(client, user)) == [staying["id"]]
    again = client.patch(url, json={"list_id": work["id"], "title": "x"}, headers=user.headers)
    assert again.json()["position"] == response.json()["position"]


def test_put_without_list_id_leaves_the_todo_where_it_is(client: TestClient, user: ApiUser) -> None:
    work = create_list(client, user)
    create_todo(client, user, list_id=work["id"])
    item = create_todo(client, user, list_id=work["id"])
    url = f"/api/v1/todos/{item['id']}"
    replaced = client.put(url, json={"title": "new"}, headers=user.headers).json()
    assert (replaced["list_id"], replaced["position"]) == (item["list_id"], item["position"])
    inbox = inbox_id(client, user)
    moved = client.put(url, json={"title": "new", "list_id": inbox}, headers=user.headers).json()
    assert moved["list_id"] == inbox


def test_move_within_a_list_changes_only_the_moved_todo(client: TestClient, user: ApiUser) -> None:
    a, b, c, d = (create_todo(client, user, title=name) for name in "abcd")
    inbox = inbox_id(client, user)
    before = {t["id"]: t["position"] for t in (a, b, c, d)}
    response = move(client, user, d["id"], a["id"])
    assert response.status_code == 200, response.text
    assert response.headers["etag"]
    assert in_order(client, user, inbox) == [a["id"], d["id"], b["id"], c["id"]]
    items = client.get("/api/v1/todos", params={"limit": 100}, headers=user.headers).json()
    after = {t["id"]: t["position"] for t in items["items"]}
    assert {k: v for k, v in after.items() if k != d["id"]} == {
        k: v for k, v in before.items() if k != d["id"]
    }
    assert move(client, user, c["id"], None).status_code == 200
    assert in_order(client, user, inbox) == [c["id"], a["id"], d["id"], b["id"]]
    assert move(client, user, c["id"], b["id"]).status_code == 200  # to the end
    assert in_order(client, user, inbox) == [a["id"], d["id"], b["id"], c["id"]]


def test_move_into_another_list(client: TestClient, user: ApiUser) -> None:
    work = create_list(client, user)
    x, y = (
        create_todo(client, user, list_id=work["id"]),
        create_todo(client, user, list_id=work["id"]),
    )
    moving = create_todo(client, user)
    response = move(client, user, moving["id"], x["id"], list_id=work["id"])
    assert response.status_code == 200, response.text
    assert response.json()["list_id"] == work["id"]
    assert in_order(client, user, work["id"]) == [x["id"], moving["id"], y["id"]]
    assert in_order(client, user, inbox_id(client, user)) == []


def test_after_must_be_in_the_target_list(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    work = create_list(client, user)
    elsewhere = create_todo(client, user, list_id=work["id"])
    moving = create_todo(client, user)
    theirs = create_todo(client, other_user)
    for after in (elsewhere["id"], theirs["id"], str(uuid.uuid4()), moving["id"]):
        assert move(client, user, moving["id"], after).status_code == 422
    assert client.get(f"/api/v1/todos/{moving['id']}", headers=user.headers).json() == moving


def test_move_validates_its_body(client: TestClient, user: ApiUser) -> None:
    item = create_todo(client, user)
    url = f"/api/v1/todos/{item['id']}/move"
    for body in ({}, {"after": "x"}, {"after": None, "list_id": None, "extra": 1}, []):
        assert client.post(url, json=body, headers=user.headers).status_code == 422


def test_move_honours_if_match(client: TestClient, user: ApiUser) -> None:
    a, b = create_todo(client, user), create_todo(client, user)
    etag = client.get(f"/api/v1/todos/{b['id']}", headers=user.headers).headers["etag"]
    client.patch(f"/api/v1/todos/{b['id']}", json={"title": "changed"}, headers=user.headers)
    stale = move(client, user, b["id"], None, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert in_order(client, user, inbox_id(client, user)) == [a["id"], b["id"]]
    current = client.get(f"/api/v1/todos/{b['id']}", headers=user.headers).headers["etag"]
    moved = move(client, user, b["id"], None, headers={"If-Match": current})
    assert moved.status_code == 200
    assert moved.headers["etag"] != current
    assert in_order(client, user, inbox_id(client, user)) == [b["id"], a["id"]]


def test_another_users_todo_is_a_404_on_move(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    theirs = create_todo(client, other_user)
    for todo_id in (theirs["id"], str(uuid.uuid4())):
        response = move(client, user, todo_id, None)
        assert response.status_code == 404
        assert response.json() == {"detail": "Todo not found"}


def test_sort_position_walks_every_list_in_order_both_ways(
    client: TestClient, user: ApiUser
) -> None:
    work = create_list(client, user)
    items = [create_todo(client, user, list_id=work["id"], title=f"t{i}") for i in range(9)]
    move(client, user, items[8]["id"], None)
    move(client, user, items[0]["id"], items[4]["id"])
    expected = [items[8], *items[1:5], items[0], *items[5:8]]
    assert in_order(client, user, work["id"], limit=2) == [t["id"] for t in expected]
    ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"list_id": work["id"], "sort": "-position", "limit": 4}
        body = client.get(
            "/api/v1/todos", params=params | ({"cursor": cursor} if cursor else {}),
            headers=user.headers,
        ).json()  # fmt: skip
        ids += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert ids == [t["id"] for t in reversed(expected)]


def test_fifty_concurrent_moves_and_inserts_keep_one_distinct_position_each(
    client: TestClient, user: ApiUser
) -> None:
    """25 inserts and 25 moves into one list at once. Every todo ends with one position, no
    two alike, and the order is one a serial run of the same requests could have produced:
    each move's todo right after its `after` at the time it ran, inserts at the end."""
    inbox = inbox_id(client, user)
    seeds = [create_todo(client, user, title=f"seed{i}") for i in range(10)]

    def insert(i: int) -> Any:
        return client.post("/api/v1/todos", json={"title": f"new{i}"}, headers=user.headers)

    def move_one(i: int) -> Any:  # never after itself: i and 3i + 1 differ mod 10
        return move(client, user, seeds[i % 10]["id"], seeds[(i * 3 + 1) % 10]["id"])

    jobs = [(insert, i) for i in range(25)] + [(move_one, i) for i in range(25)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(lambda job: job[0](job[1]), jobs))
    assert [r.status_code for r in responses] == [201] * 25 + [200] * 25
    items = client.get(
        "/api/v1/todos", params={"limit": 100, "list_id": inbox, "sort": "position"},
        headers=user.headers,
    ).json()["items"]  # fmt: skip
    positions = [item["position"] for item in items]
    assert len(items) == 35
    assert all(positions)
    assert len(set(positions)) == 35
    # Moves place a seed right after a seed (or first) and inserts append, so the two kinds
    # commute, and every serial run ends with the seeds, in the order the moves leave them,
    # then the 25 new todos. The moves' own serial order is the order they held the list's
    # lock, which their updated_at (taken under it) records.
    serial = sorted(
        zip(jobs[25:], responses[25:], strict=True), key=lambda m: m[1].json()["updated_at"]
    )
    expected = [seed["id"] for seed in seeds]
    for (_, i), _response in serial:
        moving, after = seeds[i % 10]["id"], seeds[(i * 3 + 1) % 10]["id"]
        expected.remove(moving)
        expected.insert(expected.index(after) + 1, moving)
    ids = [item["id"] for item in items]
    assert ids[:10] == expected
    assert sorted(ids[10:]) == sorted(r.json()["id"] for r in responses[:25])


def test_a_list_whose_keys_grow_too_long_is_rebalanced_in_order(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    """Moving the last todo to the front again and again halves one gap each time: keys grow
    until the bound, then the todos around that gap are renumbered, order kept."""
    inbox = inbox_id(client, user)
    others = [create_todo(client, user, list_id=create_list(client, user)["id"])]
    expected = [create_todo(client, user, title=f"t{i}")["id"] for i in range(3)]
    longest = 0
    for _ in range(110):
        last = expected[-1]
        assert move(client, user, last, None).status_code == 200
        expected = [last, *expected[:-1]]
        items = client.get(
            "/api/v1/todos", params={"list_id": inbox, "sort": "position"}, headers=user.headers
        ).json()["items"]
        assert [item["id"] for item in items] == expected
        longest = max(longest, *(len(item["position"]) for item in items))
    assert 25 < longest <= 32  # it did grow, and never past the bound
    with db_engine.connect() as connection:
        short = connection.execute(
            select(func.max(func.length(Todo.position))).where(Todo.list_id == uuid.UUID(inbox))
        ).scalar_one()
    assert short < longest  # rebalanced since
    # Another list's todos were not touched.
    other = client.get(f"/api/v1/todos/{others[0]['id']}", headers=user.headers).json()
    assert other == others[0]


def _version_total(engine: Engine, list_id: str) -> int:
    """Every write of a todo adds one to its version: the sum counts rows rewritten."""
    with engine.connect() as connection:
        return int(
            connection.scalar(
                select(func.sum(Todo.version)).where(Todo.list_id == uuid.UUID(list_id))
            )
            or 0
        )


def test_moves_into_one_gap_renumber_only_around_it(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    """Issue 29 HIGH 2, the move attack: two todos moved in turn right after the same one
    exhaust that gap every ~36-88 moves. Each move rewrites a bounded number of todos (never
    the whole list, here 400 of them), and the order stays what the moves made it."""
    inbox = inbox_id(client, user)
    insert_todos(db_engine, user.id, inbox, 200)
    anchor, first, second = (create_todo(client, user, title=t)["id"] for t in "XAB")
    insert_todos(db_engine, user.id, inbox, 200)
    bound = 2 * renumber.MAX_WINDOW + 1  # the window around the gap, and the moved todo
    assert bound < 400
    total = _version_total(db_engine, inbox)
    rewritten = []
    for i in range(200):
        moving = (first, second)[i % 2]
        response = move(client, user, moving, anchor)
        assert response.status_code == 200, response.text
        assert len(response.json()["position"]) <= 32
        now = _version_total(db_engine, inbox)
        rewritten.append(now - total)
        total = now
    assert max(rewritten) > 1  # the gap did run out, and was repaired
    assert max(rewritten) <= bound, max(rewritten)
    ids = in_order(client, user, inbox, limit=100)
    at = ids.index(anchor)
    assert ids[at : at + 3] == [anchor, second, first]  # the last move put `second` first
    assert len(ids) == 403
    with db_engine.connect() as connection:
        positions = connection.scalars(
            select(Todo.position).where(Todo.list_id == uuid.UUID(inbox)).order_by(Todo.position)
        ).all()
    assert len(set(positions)) == 403
    assert max(len(p or "") for p in positions) <= 32


def test_a_move_waits_on_the_list_lock_at_most_lock_timeout_then_503(
    client: TestClient, user: ApiUser, db_engine: Engine, backend: str
) -> None:
    """Issue 29 HIGH 2: waiters on a list's lock held connections until the statement timeout.
    Another transaction holds the list's row; a move into it gets 503 with Retry-After after
    LOCK_TIMEOUT_MS (default 1 s), well before the statement timeout (5 s), never a 500, and
    works again once the lock is gone. (SQLite: tests/todos/test_sqlite_busy.py.)"""
    if backend == "sqlite":
        pytest.skip("SQLite has no row locks: its write lock is test_sqlite_busy's")
    inbox = inbox_id(client, user)
    first, second = create_todo(client, user), create_todo(client, user)
    with db_engine.connect() as holder:
        holder.execute(
            update(TodoList).where(TodoList.id == uuid.UUID(inbox)).values(name=TodoList.name)
        )  # the transaction stays open: the list is locked until the block ends
        started = time.monotonic()
        response = move(client, user, second["id"], None)
        waited = time.monotonic() - started
        holder.rollback()
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert "Internal" not in response.text
    assert 0.9 < waited < 3.5, waited  # LOCK_TIMEOUT_MS, not DB_STATEMENT_TIMEOUT_MS (5 s)
    assert move(client, user, second["id"], None).status_code == 200
    assert in_order(client, user, inbox) == [second["id"], first["id"]]


def test_a_renumbering_that_times_out_is_503_once_and_the_next_move_repairs_the_gap(
    client: TestClient, user: ApiUser, db_engine: Engine, backend: str
) -> None:
    """Issue 29 HIGH 2: a rebalance that hit the statement timeout rolled back, and every
    later move into the gap retried it, each for the full timeout. A renumbering blocked by a
    row another transaction holds now gives up after LOCK_TIMEOUT_MS, once (503, no retry in
    the request), and the next move does the same bounded repair again and succeeds."""
    if backend == "sqlite":
        pytest.skip("SQLite has no row locks")
    inbox = inbox_id(client, user)
    anchor, first, second, _neighbour = (create_todo(client, user)["id"] for _ in range(4))

    def next_key_too_long() -> bool:
        items = client.get(
            "/api/v1/todos", params={"list_id": inbox, "sort": "position"}, headers=user.headers
        ).json()["items"]
        positions = [item["position"] for item in items]
        return len(key_between(positions[0], positions[1])) > 32

    moving = first
    while not next_key_too_long():
        assert move(client, user, moving, anchor).status_code == 200
        moving = second if moving == first else first
    total = _version_total(db_engine, inbox)
    other = second if moving == first else first  # between the anchor and the neighbour
    with db_engine.connect() as holder:
        holder.execute(
            select(Todo.id).where(Todo.id == uuid.UUID(other)).with_for_update()
        )  # a todo the repair must rewrite (its key is the long one) is held by someone else
        started = time.monotonic()
        refused = move(client, user, moving, anchor)
        waited = time.monotonic() - started
        holder.rollback()
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["retry-after"]) >= 1
    assert waited < 3.5, waited  # one lock timeout (1 s), not retries, not the statement timeout
    assert _version_total(db_engine, inbox) == total  # rolled back: nothing half-written
    repaired = move(client, user, moving, anchor)
    assert repaired.status_code == 200, repaired.text
    assert len(repaired.json()["position"]) <= 32
    assert in_order(client, user, inbox)[:2] == [anchor, moving]
