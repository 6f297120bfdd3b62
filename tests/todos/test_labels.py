"""Labels (API.md v1.3): validation, trimming and order, the label= filter with the other
filters and cursors, GET /api/v1/labels, the feed, and the todo_labels index kept in step."""

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, Uuid, bindparam, text

from app.todos.labels_repository import WALK_ABOVE
from tests.conftest import ApiUser
from tests.todos.helpers import assert_validation_error, create, list_todos, send

Todo = dict[str, Any]
TOO_LONG = "x" * 51


def _labels_of(client: TestClient, user: ApiUser) -> list[dict[str, Any]]:
    response = client.get("/api/v1/labels", headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items"}
    items: list[dict[str, Any]] = body["items"]
    return items


def _titles(client: TestClient, user: ApiUser, **params: Any) -> list[str]:
    """Every title the list walks to, a page of 2 at a time, oldest first."""
    titles, cursor = [], None
    while True:
        extra = {} if cursor is None else {"cursor": cursor}
        page = list_todos(client, user, limit=2, sort="created_at", **params, **extra)
        titles += [todo["title"] for todo in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return titles


def _index_rows(db_engine: Engine, todo_id: str) -> list[tuple[str, str]]:
    with db_engine.connect() as connection:
        sql = text("SELECT name_key, name FROM todo_labels WHERE todo_id = :id ORDER BY name_key")
        rows = connection.execute(
            sql.bindparams(bindparam("id", type_=Uuid)), {"id": uuid.UUID(todo_id)}
        )
        return [(row[0], row[1]) for row in rows]


@pytest.mark.parametrize(
    "labels",
    [
        [f"l{i}" for i in range(21)],  # 21 labels
        [TOO_LONG],  # 51 characters
        ["  " + TOO_LONG + "  "],  # still 51 after trimming
        ["Work", "work"],  # equal ignoring case
        ["Straße", "STRASSE"],  # equal casefolded
        ["ok", "   "],  # empty after trimming
        [""],
        None,
        "work",  # not a list
        [7],  # not a string
    ],
)
def test_invalid_labels_are_422_naming_labels(
    client: TestClient, user: ApiUser, labels: Any
) -> None:
    todo = create(client, user)
    for method, url in [
        ("POST", "/api/v1/todos"),
        ("PUT", f"/api/v1/todos/{todo['id']}"),
        ("PATCH", f"/api/v1/todos/{todo['id']}"),
    ]:
        body = {"title": "t", "labels": labels}
        response = client.request(method, url, json=body, headers=user.headers)
        errors = assert_validation_error(response)
        assert all("labels" in error["loc"] for error in errors), (method, errors)
    assert send(client, user, "GET", todo["id"]).json()["labels"] == []


def test_labels_are_stored_trimmed_in_the_order_given(client: TestClient, user: ApiUser) -> None:
    assert create(client, user)["labels"] == []  # optional: none by default
    labels = ["  zeta ", "Alpha", "mid dle", "x" * 50, "  " + "y" * 50 + "  "]
    todo = create(client, user, labels=labels)
    expected = ["zeta", "Alpha", "mid dle", "x" * 50, "y" * 50]
    assert todo["labels"] == expected
    assert send(client, user, "GET", todo["id"]).json()["labels"] == expected
    twenty = [f"L{i}" for i in range(20)]
    assert create(client, user, labels=twenty)["labels"] == twenty


def test_patch_and_put_replace_the_labels(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    todo = create(client, user, labels=["a", "B"])
    assert _index_rows(db_engine, todo["id"]) == [("a", "a"), ("b", "B")]
    patched = send(client, user, "PATCH", todo["id"], {"labels": ["c", " A "]})
    assert patched.status_code == 200, patched.text
    assert patched.json()["labels"] == ["c", "A"]
    assert _index_rows(db_engine, todo["id"]) == [("a", "A"), ("c", "c")]
    # A PATCH without labels keeps them; a PUT without them resets them to none.
    kept = send(client, user, "PATCH", todo["id"], {"title": "renamed"})
    assert kept.json()["labels"] == ["c", "A"]
    assert _index_rows(db_engine, todo["id"]) == [("a", "A"), ("c", "c")]
    put = send(client, user, "PUT", todo["id"], {"title": "renamed"})
    assert put.status_code == 200, put.text
    assert put.json()["labels"] == []
    assert _index_rows(db_engine, todo["id"]) == []


def test_writing_the_same_labels_changes_nothing(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user, labels=["a", "b"])
    again = send(client, user, "PATCH", todo["id"], {"labels": [" a", "b "]})
    assert again.status_code == 200, again.text
    assert again.headers["etag"] == '"1"'
    reordered = send(client, user, "PATCH", todo["id"], {"labels": ["b", "a"]})
    assert reordered.headers["etag"] == '"2"'  # the order is part of the value
    assert reordered.json()["labels"] == ["b", "a"]


def test_a_stale_if_match_writes_no_labels(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    todo = create(client, user, labels=["kept"])
    stale = send(client, user, "PATCH", todo["id"], {"labels": ["lost"]}, if_match='"9"')
    assert stale.status_code == 412, stale.text
    assert _index_rows(db_engine, todo["id"]) == [("kept", "kept")]


def test_deleting_a_todo_removes_its_labels(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    todo = create(client, user, labels=["gone", "also"])
    create(client, user, labels=["also"])
    assert send(client, user, "DELETE", todo["id"]).status_code == 204
    assert _index_rows(db_engine, todo["id"]) == []
    assert _labels_of(client, user) == [{"name": "also", "count": 1}]


def test_deleting_a_list_or_an_account_removes_its_todos_labels(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    work = client.post("/api/v1/lists", json={"name": "Work"}, headers=user.headers).json()
    listed = create(client, user, labels=["listed"], list_id=work["id"])
    kept = create(client, user, labels=["kept"])
    assert client.delete(f"/api/v1/lists/{work['id']}", headers=user.headers).status_code == 204
    assert _index_rows(db_engine, listed["id"]) == []
    assert _labels_of(client, user) == [{"name": "kept", "count": 1}]
    gone = client.request(
        "DELETE", "/api/v1/users/me", json={"current_password": user.password}, headers=user.headers
    )
    assert gone.status_code == 204, gone.text
    assert _index_rows(db_engine, kept["id"]) == []


def test_label_filter_needs_every_label_ignoring_case(client: TestClient, user: ApiUser) -> None:
    create(client, user, title="work only", labels=["Work"])
    create(client, user, title="work urgent", labels=["urgent", "WORK"])
    create(client, user, title="urgent only", labels=["Urgent"])
    create(client, user, title="none")
    create(client, user, title="strasse", labels=["Straße"])
    assert _titles(client, user, label="work") == ["work only", "work urgent"]
    assert _titles(client, user, label=["URGENT", "wOrK"]) == ["work urgent"]
    assert _titles(client, user, label=["work", "Work"]) == ["work only", "work urgent"]
    assert _titles(client, user, label="strasse") == ["strasse"]  # casefolded, as stored
    assert _titles(client, user, label=" urgent ") == ["work urgent", "urgent only"]
    assert _titles(client, user, label="nobody") == []
    assert _titles(client, user, label=["work", "nobody"]) == []


def test_label_filter_follows_relabelling(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user, title="moved", labels=["before"])
    send(client, user, "PATCH", todo["id"], {"labels": ["after"]})
    assert _titles(client, user, label="before") == []
    assert _titles(client, user, label="after") == ["moved"]


def test_label_filter_with_other_filters_sorts_and_cursors(
    client: TestClient, user: ApiUser
) -> None:
    for i in range(7):
        create(
            client,
            user,
            title=f"t{i}",
            completed=i % 2 == 0,
            priority="high" if i < 4 else "low",
            labels=["home"] if i % 3 else ["home", "Garden"],
        )
    create(client, user, title="elsewhere", completed=True, labels=["work"])
    assert _titles(client, user, label="home") == [f"t{i}" for i in range(7)]
    assert _titles(client, user, label="home", completed=True) == ["t0", "t2", "t4", "t6"]
    assert _titles(client, user, label=["home", "garden"]) == ["t0", "t3", "t6"]
    assert _titles(client, user, label="garden", priority="high") == ["t0", "t3"]
    assert _titles(client, user, label="home", q="t1") == ["t1"]
    page = list_todos(client, user, label="home", sort="-title", limit=3)
    assert [todo["title"] for todo in page["items"]] == ["t6", "t5", "t4"]
    rest = list_todos(client, user, label="home", sort="-title", cursor=page["next_cursor"])
    assert [todo["title"] for todo in rest["items"]] == ["t3", "t2", "t1", "t0"]
    # A cursor belongs to its filters: the same cursor with other labels is refused.
    other = client.get(
        "/api/v1/todos",
        params={"label": "garden", "sort": "-title", "cursor": page["next_cursor"]},
        headers=user.headers,
    )
    assert_validation_error(other)


def test_label_filter_bounds(client: TestClient, user: ApiUser) -> None:
    for labels in ([f"l{i}" for i in range(21)], [TOO_LONG], ["  "]):
        response = client.get("/api/v1/todos", params={"label": labels}, headers=user.headers)
        errors = assert_validation_error(response)
        assert all("label" in error["loc"] for error in errors), errors


def test_labels_counts_spelling_and_order(client: TestClient, user: ApiUser) -> None:
    assert _labels_of(client, user) == []
    first = create(client, user, labels=["work", "Zebra"])
    create(client, user, labels=["WORK", "apple"])
    create(client, user, labels=["Banana"])
    create(client, user)
    assert _labels_of(client, user) == [
        {"name": "apple", "count": 1},
        {"name": "Banana", "count": 1},
        {"name": "WORK", "count": 2},  # as on the most recently updated todo
        {"name": "Zebra", "count": 1},
    ]
    send(client, user, "PATCH", first["id"], {"title": "touched"})
    assert _labels_of(client, user)[2] == {"name": "work", "count": 2}
    send(client, user, "PATCH", first["id"], {"labels": ["Work"]})
    assert _labels_of(client, user) == [
        {"name": "apple", "count": 1},
        {"name": "Banana", "count": 1},
        {"name": "Work", "count": 2},
    ]


def test_a_common_labels_spelling_is_also_the_latest_todos(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    """Past WALK_ABOVE todos a label's spelling is found another way (labels_repository):
    still the most recently updated todo's, and never another user's."""
    count = WALK_ABOVE + 2
    todos = [create(client, user, labels=["Bulk" if i % 2 else "BULK"]) for i in range(count)]
    create(client, user, labels=["few"])
    assert _labels_of(client, user) == [
        {"name": "Bulk", "count": count},
        {"name": "few", "count": 1},
    ]
    send(client, user, "PATCH", todos[0]["id"], {"title": "touched"})
    assert _labels_of(client, user)[0] == {"name": "BULK", "count": count}
    create(client, other_user, labels=["bulk"])  # later, but someone else's
    assert _labels_of(client, user)[0] == {"name": "BULK", "count": count}


def test_another_users_labels_are_never_seen(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    create(client, user, title="mine", labels=["shared", "mine"])
    theirs = create(client, other_user, title="theirs", labels=["SHARED", "theirs"])
    send(client, other_user, "PATCH", theirs["id"], {"title": "theirs, later"})
    assert _labels_of(client, user) == [
        {"name": "mine", "count": 1},
        {"name": "shared", "count": 1},
    ]
    assert _titles(client, user, label="shared") == ["mine"]
    assert _titles(client, user, label="theirs") == []
    assert _titles(client, other_user, label="shared") == ["theirs, later"]
    assert _titles(client, other_user, label="mine") == []


def test_feed_items_carry_labels(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user, labels=["b", "A"])
    send(client, user, "PATCH", todo["id"], {"labels": ["A", "c"]})
    response = client.get("/api/v1/changes", headers=user.headers)
    assert response.status_code == 200, response.text
    items = [change for change in response.json()["changes"] if change["id"] == todo["id"]]
    assert [change["item"]["labels"] for change in items] == [["A", "c"]]
