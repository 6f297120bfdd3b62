"""Lists over HTTP: the default list, CRUD, ETag/If-Match, order and moves, isolation."""

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import ApiUser, assert_bearer_401, deactivate
from tests.lists.helpers import create_list

LIST_KEYS = {"id", "name", "position", "is_default", "created_at", "updated_at", "version"}


def lists_of(client: TestClient, user: ApiUser) -> list[dict[str, Any]]:
    response = client.get("/api/v1/lists", params={"limit": 100}, headers=user.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def inbox(client: TestClient, user: ApiUser) -> dict[str, Any]:
    (default,) = [item for item in lists_of(client, user) if item["is_default"]]
    return default


def move(client: TestClient, user: ApiUser, list_id: str, after: str | None, **headers: str):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/lists/{list_id}/move", json={"after": after}, headers={**user.headers, **headers}
    )


def test_every_account_starts_with_one_default_list(client: TestClient, user: ApiUser) -> None:
    (only,) = lists_of(client, user)
    assert set(only) == LIST_KEYS
    assert only["name"] == "Inbox"
    assert only["is_default"] is True


def test_create_read_rename_delete(client: TestClient, user: ApiUser) -> None:
    response = client.post("/api/v1/lists", json={"name": "  Work  "}, headers=user.headers)
    assert response.status_code == 201
    created = response.json()
    assert set(created) == LIST_KEYS
    assert created["name"] == "Work"
    assert created["is_default"] is False
    assert response.headers["location"] == f"/api/v1/lists/{created['id']}"
    etag = response.headers["etag"]
    got = client.get(f"/api/v1/lists/{created['id']}", headers=user.headers)
    assert got.status_code == 200
    assert got.json() == created
    assert got.headers["etag"] == etag
    renamed = client.patch(
        f"/api/v1/lists/{created['id']}", json={"name": "Job"}, headers=user.headers
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Job"
    assert renamed.headers["etag"] != etag
    assert client.delete(f"/api/v1/lists/{created['id']}", headers=user.headers).status_code == 204
    assert client.get(f"/api/v1/lists/{created['id']}", headers=user.headers).status_code == 404
    assert client.delete(f"/api/v1/lists/{created['id']}", headers=user.headers).status_code == 404


def test_renaming_to_the_same_name_keeps_etag_and_updated_at(
    client: TestClient, user: ApiUser
) -> None:
    created = create_list(client, user, "Same")
    first = client.get(f"/api/v1/lists/{created['id']}", headers=user.headers)
    again = client.patch(
        f"/api/v1/lists/{created['id']}", json={"name": "Same"}, headers=user.headers
    )
    assert again.status_code == 200
    assert again.headers["etag"] == first.headers["etag"]
    assert again.json() == created


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 101}, {"name": 5}, {"name": None},
     {"name": "ok", "colour": "red"}, {"name": "a\x00b"}],
)  # fmt: skip
def test_invalid_names_are_422_and_change_nothing(
    client: TestClient, user: ApiUser, body: dict[str, Any]
) -> None:
    before = lists_of(client, user)
    assert client.post("/api/v1/lists", json=body, headers=user.headers).status_code == 422
    default = before[0]["id"]
    assert (
        client.patch(f"/api/v1/lists/{default}", json=body, headers=user.headers).status_code == 422
    )
    assert lists_of(client, user) == before


def test_a_name_of_100_characters_is_accepted(client: TestClient, user: ApiUser) -> None:
    assert create_list(client, user, "x" * 100)["name"] == "x" * 100


def test_the_default_list_cannot_be_deleted(client: TestClient, user: ApiUser) -> None:
    default = inbox(client, user)
    response = client.delete(f"/api/v1/lists/{default['id']}", headers=user.headers)
    assert response.status_code == 409
    assert isinstance(response.json()["detail"], str)
    etag = client.get(f"/api/v1/lists/{default['id']}", headers=user.headers).headers["etag"]
    response = client.delete(
        f"/api/v1/lists/{default['id']}", headers={**user.headers, "If-Match": etag}
    )
    assert response.status_code == 409
    assert lists_of(client, user) == [default]


def test_deleting_a_list_deletes_its_todos(client: TestClient, user: ApiUser) -> None:
    work = create_list(client, user)
    ids = []
    for title in ("a", "b"):
        response = client.post(
            "/api/v1/todos", json={"title": title, "list_id": work["id"]}, headers=user.headers
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    kept = client.post("/api/v1/todos", json={"title": "kept"}, headers=user.headers).json()
    assert client.delete(f"/api/v1/lists/{work['id']}", headers=user.headers).status_code == 204
    for todo_id in ids:
        assert client.get(f"/api/v1/todos/{todo_id}", headers=user.headers).status_code == 404
    assert client.get(f"/api/v1/todos/{kept['id']}", headers=user.headers).status_code == 200


@pytest.mark.parametrize("method", ["PATCH", "DELETE", "MOVE"])
def test_if_match(client: TestClient, user: ApiUser, method: str) -> None:
    created = create_list(client, user)
    url = f"/api/v1/lists/{created['id']}"
    etag = client.get(url, headers=user.headers).headers["etag"]
    client.patch(url, json={"name": "changed"}, headers=user.headers)

    def send(tag: str):  # type: ignore[no-untyped-def]
        headers = {**user.headers, "If-Match": tag}
        if method == "PATCH":
            return client.patch(url, json={"name": "again"}, headers=headers)
        if method == "MOVE":
            return client.post(f"{url}/move", json={"after": None}, headers=headers)
        return client.delete(url, headers=headers)

    stale = send(etag)
    assert stale.status_code == 412
    assert client.get(url, headers=user.headers).json()["name"] == "changed"
    current = client.get(url, headers=user.headers).headers["etag"]
    assert send(current).status_code == (204 if method == "DELETE" else 200)


def test_new_lists_go_to_the_end_and_pages_walk_in_position_order(
    client: TestClient, user: ApiUser
) -> None:
    names = [f"list {i}" for i in range(7)]
    for name in names:
        create_list(client, user, name)
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/lists", params=params, headers=user.headers).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [item["name"] for item in seen] == ["Inbox", *names]
    positions = [item["position"] for item in seen]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)


def test_bad_cursor_is_422(client: TestClient, user: ApiUser) -> None:
    response = client.get("/api/v1/lists", params={"cursor": "nope"}, headers=user.headers)
    assert response.status_code == 422


def test_move_places_a_list_after_another_or_first(client: TestClient, user: ApiUser) -> None:
    a, b, c = (create_list(client, user, name) for name in "abc")
    untouched = {item["id"]: item["position"] for item in lists_of(client, user)}
    moved = move(client, user, c["id"], a["id"])
    assert moved.status_code == 200, moved.text
    assert moved.json()["position"] != c["position"]
    assert [item["name"] for item in lists_of(client, user)] == ["Inbox", "a", "c", "b"]
    # Nobody else was renumbered.
    after = {item["id"]: item["position"] for item in lists_of(client, user)}
    assert {k: v for k, v in after.items() if k != c["id"]} == {
        k: v for k, v in untouched.items() if k != c["id"]
    }
    assert move(client, user, b["id"], None).status_code == 200
    assert [item["name"] for item in lists_of(client, user)] == ["b", "Inbox", "a", "c"]


def test_move_after_a_missing_or_foreign_list_or_itself_is_422(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    mine = create_list(client, user)
    theirs = create_list(client, other_user)
    for after in (str(uuid.uuid4()), theirs["id"], mine["id"]):
        assert move(client, user, mine["id"], after).status_code == 422
    assert (
        client.post(
            f"/api/v1/lists/{mine['id']}/move", json={"after": "x"}, headers=user.headers
        ).status_code
        == 422
    )


def test_keys_stay_short_the_list_is_rebalanced_in_order(client: TestClient, user: ApiUser) -> None:
    """Always moving the last list to the front halves one gap again and again: keys grow
    until the bound, when the lists around that gap are renumbered."""
    for i in range(3):
        create_list(client, user, f"l{i}")
    expected = [item["id"] for item in lists_of(client, user)]
    longest = 0
    for _ in range(120):
        last = expected[-1]
        assert move(client, user, last, None).status_code == 200
        expected = [last, *expected[:-1]]
        items = lists_of(client, user)
        assert [item["id"] for item in items] == expected
        longest = max(longest, *(len(item["position"]) for item in items))
    assert 25 < longest <= 32  # it did grow, and never past the bound
    assert max(len(item["position"]) for item in lists_of(client, user)) < longest  # rebalanced


def test_another_users_list_is_a_404_everywhere(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    theirs = create_list(client, other_user)
    url = f"/api/v1/lists/{theirs['id']}"
    missing = f"/api/v1/lists/{uuid.uuid4()}"
    for target in (url, missing):
        responses = [
            client.get(target, headers=user.headers),
            client.patch(target, json={"name": "x"}, headers=user.headers),
            client.delete(target, headers=user.headers),
            client.post(f"{target}/move", json={"after": None}, headers=user.headers),
        ]
        assert [r.status_code for r in responses] == [404] * 4
        assert {r.json()["detail"] for r in responses} == {"List not found"}
    assert client.get(url, headers=other_user.headers).json() == theirs
    assert theirs["id"] not in {item["id"] for item in lists_of(client, user)}


def test_a_list_id_that_is_not_a_uuid_is_422(client: TestClient, user: ApiUser) -> None:
    assert client.get("/api/v1/lists/nope", headers=user.headers).status_code == 422


def test_routes_need_a_user_who_may_act(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    created = create_list(client, user)
    url = f"/api/v1/lists/{created['id']}"
    assert_bearer_401(client.get("/api/v1/lists"))
    assert_bearer_401(client.post("/api/v1/lists", json={"name": "x"}))
    deactivate(db_engine, user.id)
    for response in (
        client.get("/api/v1/lists", headers=user.headers),
        client.post("/api/v1/lists", json={"name": "x"}, headers=user.headers),
        client.get(url, headers=user.headers),
        client.patch(url, json={"name": "y"}, headers=user.headers),
        client.post(f"{url}/move", json={"after": None}, headers=user.headers),
        client.delete(url, headers=user.headers),
    ):
        assert_bearer_401(response)
