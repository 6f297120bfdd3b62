"""Subtasks (issue 27, API.md v1.3 `parent_id`): one level, in the parent's list, ordered
among their siblings; a parent's completion, deletion and list move carry its subtasks; every
way of naming a missing or another user's parent is the same 422."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.changes.helpers import page
from tests.conftest import ApiUser
from tests.lists.helpers import create_list, create_todo

TODOS = "/api/v1/todos"


def _patch(
    client: TestClient, user: ApiUser, todo_id: str, body: dict[str, Any]
) -> httpx2.Response:
    return client.patch(f"{TODOS}/{todo_id}", json=body, headers=user.headers)


def _move(client: TestClient, user: ApiUser, todo_id: str, **body: Any) -> httpx2.Response:
    return client.post(f"{TODOS}/{todo_id}/move", json=body, headers=user.headers)


def _get(client: TestClient, user: ApiUser, todo_id: str) -> dict[str, Any]:
    response = client.get(f"{TODOS}/{todo_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _subtasks(client: TestClient, user: ApiUser, parent_id: str, limit: int = 100) -> list[str]:
    """The parent's subtasks' ids in the default order, walking every page."""
    ids: list[str] = []
    params: dict[str, Any] = {"parent_id": parent_id, "limit": limit}
    while True:
        response = client.get(TODOS, params=params, headers=user.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        ids += [item["id"] for item in body["items"]]
        if body["next_cursor"] is None:
            return ids
        params["cursor"] = body["next_cursor"]


def _parent_error(response: httpx2.Response) -> str:
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "parent_id"], error
    message: str = error["msg"]
    return message


def test_a_subtask_goes_into_its_parents_list_last_among_its_siblings(
    client: TestClient, user: ApiUser
) -> None:
    work = create_list(client, user)
    parent = create_todo(client, user, list_id=work["id"])
    first = create_todo(client, user, parent_id=parent["id"])  # no list_id: the parent's
    create_todo(client, user, list_id=work["id"])  # a top-level todo in between
    second = create_todo(client, user, parent_id=parent["id"], list_id=work["id"])
    assert first["parent_id"] == second["parent_id"] == parent["id"]
    assert first["list_id"] == second["list_id"] == work["id"]
    assert parent["parent_id"] is None
    assert _subtasks(client, user, parent["id"]) == [first["id"], second["id"]]
    assert _get(client, user, first["id"]) == first


def test_every_impossible_parent_is_a_422_naming_parent_id(
    client: TestClient, user: ApiUser
) -> None:
    other = create_list(client, user, "Other")
    parent = create_todo(client, user)
    child = create_todo(client, user, parent_id=parent["id"])
    elsewhere = create_todo(client, user, list_id=other["id"])
    loner = create_todo(client, user)
    answers = [
        # A subtask of a subtask: on create, PATCH, PUT and move.
        client.post(TODOS, json={"title": "x", "parent_id": child["id"]}, headers=user.headers),
        _patch(client, user, loner["id"], {"parent_id": child["id"]}),
        client.put(
            f"{TODOS}/{loner['id']}",
            json={"title": "x", "parent_id": child["id"]},
            headers=user.headers,
        ),
        _move(client, user, loner["id"], after=None, parent_id=child["id"]),
        # A parent in another list.
        client.post(
            TODOS,
            json={"title": "x", "parent_id": parent["id"], "list_id": other["id"]},
            headers=user.headers,
        ),
        _patch(client, user, elsewhere["id"], {"parent_id": parent["id"]}),
        _move(client, user, loner["id"], after=None, parent_id=parent["id"], list_id=other["id"]),
        # A subtask moved away from its parent's list, keeping its parent.
        _patch(client, user, child["id"], {"list_id": other["id"]}),
        _move(client, user, child["id"], after=None, list_id=other["id"]),
        # A todo that has subtasks becoming one; a todo its own parent.
        _patch(client, user, parent["id"], {"parent_id": loner["id"]}),
        _move(client, user, parent["id"], after=None, parent_id=loner["id"]),
        _patch(client, user, loner["id"], {"parent_id": loner["id"]}),
    ]
    messages = [_parent_error(answer) for answer in answers]
    assert len(set(messages[:4])) == 1
    assert all(messages)
    # Nothing changed.
    assert _get(client, user, child["id"]) == child
    assert _get(client, user, parent["id"])["parent_id"] is None
    assert _get(client, user, loner["id"]) == loner
    assert _get(client, user, elsewhere["id"]) == elsewhere


def test_a_missing_or_foreign_parent_is_the_same_422_everywhere(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    theirs = create_todo(client, other_user)
    mine = create_todo(client, user)
    answers = []
    for parent_id in (theirs["id"], str(uuid.uuid4())):
        body = {"title": "x", "parent_id": parent_id}
        answers.append(client.post(TODOS, json=body, headers=user.headers))
        answers.append(
            client.post(TODOS, json={**body, "id": str(uuid.uuid4())}, headers=user.headers)
        )
        keyed = {**user.headers, "Idempotency-Key": uuid.uuid4().hex}
        answers.append(client.post(TODOS, json=body, headers=keyed))
        answers.append(_patch(client, user, mine["id"], {"parent_id": parent_id}))
        answers.append(client.put(f"{TODOS}/{mine['id']}", json=body, headers=user.headers))
        answers.append(_move(client, user, mine["id"], after=None, parent_id=parent_id))
    assert [a.status_code for a in answers] == [422] * 12
    assert len({a.text for a in answers}) == 1  # a foreign parent is a missing one
    _parent_error(answers[0])
    # Their todo gained no subtask, and its subtasks are no business of ours.
    assert _subtasks(client, other_user, theirs["id"]) == []
    assert _subtasks(client, user, theirs["id"]) == []
    assert _get(client, user, mine["id"]) == mine
    assert len(client.get(TODOS, headers=user.headers).json()["items"]) == 1


def test_moves_among_siblings_and_re_parenting(client: TestClient, user: ApiUser) -> None:
    parent = create_todo(client, user)
    other_parent = create_todo(client, user)
    one, two, three = (create_todo(client, user, parent_id=parent["id"]) for _ in range(3))
    ids = [one["id"], two["id"], three["id"]]
    assert _subtasks(client, user, parent["id"]) == ids

    moved = _move(client, user, three["id"], after=None)  # first among its siblings
    assert moved.status_code == 200, moved.text
    assert moved.json()["parent_id"] == parent["id"]
    assert _subtasks(client, user, parent["id"]) == [ids[2], ids[0], ids[1]]
    assert _move(client, user, one["id"], after=two["id"]).status_code == 200
    assert _subtasks(client, user, parent["id"]) == [ids[2], ids[1], ids[0]]
    # `after` must be a sibling: not the parent, not another parent's subtask.
    for after in (parent["id"], other_parent["id"]):
        refused = _move(client, user, one["id"], after=after)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"] == ["body", "after"]

    # Re-parenting: under another parent (its first), then back to the top level.
    reparented = _move(client, user, two["id"], after=None, parent_id=other_parent["id"])
    assert reparented.status_code == 200, reparented.text
    assert reparented.json()["parent_id"] == other_parent["id"]
    assert _subtasks(client, user, other_parent["id"]) == [two["id"]]
    assert _subtasks(client, user, parent["id"]) == [ids[2], ids[0]]
    top = _move(client, user, two["id"], after=parent["id"], parent_id=None)
    assert top.status_code == 200, top.text
    assert top.json()["parent_id"] is None
    assert _subtasks(client, user, other_parent["id"]) == []
    # PATCH re-parents too, and null makes it top-level.
    assert _patch(client, user, two["id"], {"parent_id": parent["id"]}).status_code == 200
    assert set(_subtasks(client, user, parent["id"])) == set(ids)
    assert _patch(client, user, two["id"], {"parent_id": None}).json()["parent_id"] is None


def test_parent_id_and_top_level_filters_page_through(client: TestClient, user: ApiUser) -> None:
    parent = create_todo(client, user)
    children = [create_todo(client, user, parent_id=parent["id"])["id"] for _ in range(5)]
    loner = create_todo(client, user)
    assert _subtasks(client, user, parent["id"], limit=2) == children  # in position order
    newest_first = client.get(
        TODOS, params={"parent_id": parent["id"], "sort": "-created_at"}, headers=user.headers
    ).json()["items"]
    assert [item["id"] for item in newest_first] == children[::-1]

    def walk(**params: Any) -> set[str]:
        found: set[str] = set()
        params["limit"] = 2
        while True:
            body = client.get(TODOS, params=params, headers=user.headers).json()
            found |= {item["id"] for item in body["items"]}
            if body["next_cursor"] is None:
                return found
            params["cursor"] = body["next_cursor"]

    assert walk(top_level="true") == {parent["id"], loner["id"]}
    assert walk(top_level="false") == set(children)
    assert walk(parent_id=loner["id"]) == set()
    assert walk(parent_id=str(uuid.uuid4())) == set()


def test_completing_a_parent_completes_its_open_subtasks_in_the_same_write(
    client: TestClient, user: ApiUser
) -> None:
    parent = create_todo(client, user)
    open_one = create_todo(client, user, parent_id=parent["id"])
    done = create_todo(client, user, parent_id=parent["id"], completed=True)
    token = page(client, user, None)["next_token"]

    completed = _patch(client, user, parent["id"], {"completed": True})
    assert completed.status_code == 200, completed.text
    now = completed.json()["completed_at"]
    after = _get(client, user, open_one["id"])
    assert after["completed"] is True
    assert after["completed_at"] == after["updated_at"] == now
    assert _get(client, user, done["id"]) == done  # already done: untouched
    # The feed has the parent and the subtask it completed, the parent first (besides any
    # object it may send twice while a transaction elsewhere holds its watermark back).
    ids = [c["id"] for c in page(client, user, token)["changes"]]
    assert ids.index(parent["id"]) < ids.index(open_one["id"])
    # Reopening the parent leaves its subtasks as they are.
    assert _patch(client, user, parent["id"], {"completed": False}).status_code == 200
    assert _get(client, user, open_one["id"])["completed"] is True


def test_deleting_a_parent_deletes_its_subtasks_with_tombstones(
    client: TestClient, user: ApiUser
) -> None:
    parent = create_todo(client, user)
    children = [create_todo(client, user, parent_id=parent["id"])["id"] for _ in range(2)]
    keep = create_todo(client, user)
    token = page(client, user, None)["next_token"]
    assert client.delete(f"{TODOS}/{parent['id']}", headers=user.headers).status_code == 204
    for child in children:
        assert client.get(f"{TODOS}/{child}", headers=user.headers).status_code == 404
    changes = page(client, user, token)["changes"]
    seen = {(c["id"], c["deleted"]) for c in changes}
    gone = {(todo_id, True) for todo_id in (parent["id"], *children)}
    assert gone <= seen
    # Anything else is an object the feed may send twice (a transaction elsewhere in the
    # cluster held its watermark back): never another deletion.
    assert not any(deleted for _, deleted in seen - gone)
    assert [item["id"] for item in client.get(TODOS, headers=user.headers).json()["items"]] == [
        keep["id"]
    ]


@pytest.mark.parametrize("how", ["patch", "move"])
def test_moving_a_parent_to_another_list_takes_its_subtasks(
    client: TestClient, user: ApiUser, how: str
) -> None:
    other = create_list(client, user, "Other")
    create_todo(client, user, list_id=other["id"])
    parent = create_todo(client, user)
    children = [create_todo(client, user, parent_id=parent["id"])["id"] for _ in range(3)]
    _move(client, user, children[2], after=None)  # their order is not their creation order
    order = _subtasks(client, user, parent["id"])
    token = page(client, user, None)["next_token"]
    if how == "patch":
        response = _patch(client, user, parent["id"], {"list_id": other["id"]})
    else:
        response = _move(client, user, parent["id"], after=None, list_id=other["id"])
    assert response.status_code == 200, response.text
    assert response.json()["list_id"] == other["id"]
    assert _subtasks(client, user, parent["id"]) == order
    for child in children:
        assert _get(client, user, child)["list_id"] == other["id"]
    ids = [c["id"] for c in page(client, user, token)["changes"]]
    # The parent before its subtasks (an object may come twice: others may be there too).
    assert all(ids.index(parent["id"]) < ids.index(child) for child in children)
    positions = [
        item["position"]
        for item in client.get(
            TODOS, params={"list_id": other["id"], "limit": 100}, headers=user.headers
        ).json()["items"]
    ]
    assert len(set(positions)) == len(positions) == 5


def test_the_feed_puts_a_parent_before_a_subtask_whose_change_came_first(
    client: TestClient, user: ApiUser
) -> None:
    parent = create_todo(client, user)
    child = create_todo(client, user, parent_id=parent["id"])
    # The parent's latest change now comes after its subtask's in sequence.
    assert _patch(client, user, parent["id"], {"title": "renamed"}).status_code == 200
    todos = [c for c in page(client, user, None)["changes"] if c["type"] == "todo"]
    assert [c["id"] for c in todos] == [parent["id"], child["id"]]
    assert todos[1]["item"]["parent_id"] == parent["id"]


def _lock_waiters(engine: Engine, holder_pid: int) -> int:
    with engine.connect() as connection:
        query = "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> :holder"
        return int(connection.execute(text(query), {"holder": holder_pid}).scalar_one())


def test_a_under_b_while_b_goes_under_c_one_of_them_is_refused(
    client: TestClient, user: ApiUser, db_engine: Engine, backend: str
) -> None:
    """Both checks passed on their own snapshot before the locks: A became a subtask of B
    while B became one of C, a subtask of a subtask."""
    a, b, c = (create_todo(client, user)["id"] for _ in range(3))
    with db_engine.connect() as holder:
        if backend != "sqlite":
            # B's row held, so that both writes have started and wait for it before either
            # checks anything; then they run against each other.
            holder.execute(
                text("SELECT 1 FROM todos WHERE id = :b FOR UPDATE"), {"b": uuid.UUID(b)}
            )
            holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with ThreadPoolExecutor(max_workers=2) as pool:
            a_under_b = pool.submit(_patch, client, user, a, {"parent_id": b})
            b_under_c = pool.submit(_patch, client, user, b, {"parent_id": c})
            if backend != "sqlite":
                deadline = time.monotonic() + 30
                while _lock_waiters(db_engine, holder_pid) < 2:
                    assert time.monotonic() < deadline, "the writes never waited for B"
                    assert not a_under_b.done()
                    assert not b_under_c.done()
                    time.sleep(0.02)
                holder.commit()
            answers = sorted(
                [a_under_b.result(timeout=30), b_under_c.result(timeout=30)],
                key=lambda r: r.status_code,
            )
    assert [r.status_code for r in answers] == [200, 422], [r.text for r in answers]
    _parent_error(answers[1])
    found = {todo_id: _get(client, user, todo_id)["parent_id"] for todo_id in (a, b, c)}
    # One level: whoever has a parent, that parent has none.
    for parent in found.values():
        if parent is not None:
            assert found[parent] is None
    assert found in ({a: b, b: None, c: None}, {a: None, b: c, c: None})


def test_a_subtask_re_parented_while_its_parent_changes_list_stays_with_its_new_parent(
    client: TestClient, user: ApiUser, db_engine: Engine, backend: str
) -> None:
    """The parent's move read its subtasks, then moved them by id: one re-parented in
    between went along into a list its new parent is not in."""
    other = create_list(client, user, "Other")
    parent, new_parent = create_todo(client, user), create_todo(client, user)
    child = create_todo(client, user, parent_id=parent["id"])
    with db_engine.connect() as holder:
        if backend != "sqlite":
            # The subtask's row held: both writes reach it, then race for it.
            holder.execute(
                text("SELECT 1 FROM todos WHERE id = :id FOR UPDATE"),
                {"id": uuid.UUID(child["id"])},
            )
            holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with ThreadPoolExecutor(max_workers=2) as pool:
            moving = pool.submit(_patch, client, user, parent["id"], {"list_id": other["id"]})
            leaving = pool.submit(
                _patch, client, user, child["id"], {"parent_id": new_parent["id"]}
            )
            if backend != "sqlite":
                deadline = time.monotonic() + 30
                while _lock_waiters(db_engine, holder_pid) < 2:
                    assert time.monotonic() < deadline, "the writes never waited for the subtask"
                    assert not moving.done()
                    assert not leaving.done()
                    time.sleep(0.02)
                holder.commit()
            moved, left = moving.result(timeout=30), leaving.result(timeout=30)
    assert moved.status_code == 200, moved.text
    assert left.status_code in (200, 422), left.text
    found = _get(client, user, child["id"])
    assert found["list_id"] == _get(client, user, found["parent_id"])["list_id"]
    assert found["parent_id"] == (new_parent["id"] if left.status_code == 200 else parent["id"])
