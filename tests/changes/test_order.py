"""Parents first (API.md v1.4): within one answer of the feed a list comes before the todos in
it, and a todo before its subtasks; across answers the order is the change sequence, and the
tokens still walk every change exactly once.

Each case makes a parent's latest change come after its child's in sequence (renaming a list
after creating a todo in it rewrites the list's one change row, behind the todo's), and reads
the sequence itself with one change a page, where nothing can be reordered."""

import uuid
from typing import Any

from fastapi.testclient import TestClient

from app.changes.order import parents_first
from app.changes.repository import ChangeRow
from tests.changes.helpers import Replica, page, server_state
from tests.conftest import ApiUser
from tests.lists.helpers import create_list, create_todo


def _rename(client: TestClient, user: ApiUser, list_id: str, name: str) -> None:
    response = client.patch(f"/api/v1/lists/{list_id}", json={"name": name}, headers=user.headers)
    assert response.status_code == 200, response.text


def _inbox(client: TestClient, user: ApiUser) -> str:
    lists = client.get("/api/v1/lists", headers=user.headers).json()["items"]
    (inbox,) = [item["id"] for item in lists if item["is_default"]]
    return str(inbox)


def _answers(client: TestClient, user: ApiUser, limit: int) -> list[list[str]]:
    """The ids of each answer of a full walk from nothing, in the answers' order."""
    answers, token = [], None
    while True:
        body = page(client, user, token, limit)
        answers.append([change["id"] for change in body["changes"]])
        token = body["next_token"]
        if not body["has_more"]:
            return answers


def _sequence(client: TestClient, user: ApiUser) -> list[str]:
    """The change sequence itself: one change an answer leaves nothing to reorder."""
    return [ids[0] for ids in _answers(client, user, limit=1) if ids]


def test_a_list_renamed_after_its_todos_comes_before_them(
    client: TestClient, user: ApiUser
) -> None:
    inbox = _inbox(client, user)
    work = create_list(client, user)["id"]
    first = create_todo(client, user, list_id=work)["id"]
    second = create_todo(client, user, list_id=work)["id"]
    loose = create_todo(client, user)["id"]
    _rename(client, user, work, "Job")
    assert _sequence(client, user) == [inbox, first, second, loose, work]

    (answer,) = _answers(client, user, limit=100)
    # The list pulled forward to just before its first todo; the rest in sequence.
    assert answer == [inbox, work, first, second, loose]


def test_an_incremental_answer_puts_each_todo_after_its_current_list(
    client: TestClient, user: ApiUser
) -> None:
    work = create_list(client, user, "Work")["id"]
    moved = create_todo(client, user)["id"]
    replica = Replica(user)
    replica.sync(client)
    added = create_todo(client, user, list_id=work)["id"]
    home = create_list(client, user, "Home")["id"]
    response = client.patch(f"/api/v1/todos/{moved}", json={"list_id": home}, headers=user.headers)
    assert response.status_code == 200, response.text
    _rename(client, user, work, "Job")

    # news(): on PostgreSQL a transaction open elsewhere in the cluster may hold the watermark
    # back, and what this copy already holds come again (API.md: an object may come twice).
    seen = [change["id"] for change in replica.news(client)]
    # In sequence: added, home, moved, work. The moved todo's parent is its list now (home),
    # already before it; the renamed list comes before the todo added to it.
    assert seen == [work, added, home, moved]
    assert replica.objects == server_state(client, user)


def test_the_token_goes_on_after_the_pages_last_change_in_sequence(
    client: TestClient, user: ApiUser
) -> None:
    """The answer ends with a todo whose list, the page's last change in sequence, was
    pulled before it: the next answer starts after the list, not after the todo (which
    would deliver the list twice), and nothing is skipped."""
    inbox = _inbox(client, user)
    work = create_list(client, user)["id"]
    inside = create_todo(client, user, list_id=work)["id"]
    _rename(client, user, work, "Job")
    later = [create_todo(client, user)["id"] for _ in range(2)]
    assert _sequence(client, user) == [inbox, inside, work, *later]

    assert _answers(client, user, limit=3) == [[inbox, work, inside], later]
    replica = Replica(user)
    seen = replica.sync(client, limit=3)
    assert len(seen) == len({change["id"] for change in seen}) == 5
    assert replica.objects == server_state(client, user)


def test_a_parent_in_another_answer_leaves_the_sequence_as_it_is(
    client: TestClient, user: ApiUser
) -> None:
    inbox = _inbox(client, user)
    work = create_list(client, user)["id"]
    todos = [create_todo(client, user, list_id=work)["id"] for _ in range(3)]
    _rename(client, user, work, "Job")
    assert _answers(client, user, limit=2) == [[inbox, todos[0]], todos[1:], [work]]


def _row(kind: str, **item: Any) -> ChangeRow:
    object_id = uuid.uuid4()
    return ChangeRow(kind, object_id, False, 0, {"id": object_id, **item})


def test_a_subtask_comes_after_its_todo_and_their_list() -> None:
    """Todos have no parent_id yet: the ordering reads it from the item when they do."""
    work = _row("list")
    parent = _row("todo", list_id=work.object_id, parent_id=None)
    subtask = _row("todo", list_id=work.object_id, parent_id=parent.object_id)
    other = _row("todo", list_id=uuid.uuid4(), parent_id=None)
    tombstone = ChangeRow("todo", uuid.uuid4(), True, 0, None)
    rows = [subtask, other, tombstone, parent, work]
    assert parents_first(rows) == [work, parent, subtask, other, tombstone]
    # Its todo in the answer but not their list: the todo still comes first.
    assert parents_first([subtask, parent]) == [parent, subtask]
