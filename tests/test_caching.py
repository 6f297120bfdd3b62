"""API.md "Caching (v1.2)": reads of a todo, a list and pages of either may be kept by the
client and revalidated (private, no-cache + ETag; If-None-Match → 304); pages have weak ETags
that change with anything on the page or its next cursor; everything else is no-store.

Over HTTP behind PgBouncer too (the `client` fixture's pgbouncer backend: real gunicorn)."""

import re
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import ApiUser

REVALIDATE = "private, no-cache"


def create(client: TestClient, user: ApiUser, title: str) -> dict[str, Any]:
    response = client.post("/api/v1/todos", json={"title": title}, headers=user.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def page(
    client: TestClient, user: ApiUser, path: str, etag: str | None = None, **params: Any
) -> Any:
    headers = {**user.headers, **({"If-None-Match": etag} if etag else {})}
    return client.get(path, params=params, headers=headers)


def test_a_page_of_todos_has_a_weak_etag_and_answers_304(client: TestClient, user: ApiUser) -> None:
    create(client, user, "one")
    first = page(client, user, "/api/v1/todos")
    etag = first.headers["etag"]
    assert first.status_code == 200
    assert first.headers["cache-control"] == REVALIDATE
    assert re.fullmatch(r'W/"[^"]+"', etag)

    again = page(client, user, "/api/v1/todos", etag)

    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == REVALIDATE
    # A strong form of the same tag, and a list of tags naming it, match too (weak comparison).
    assert page(client, user, "/api/v1/todos", etag.removeprefix("W/")).status_code == 304
    assert page(client, user, "/api/v1/todos", f'"x", {etag}').status_code == 304
    assert page(client, user, "/api/v1/todos", 'W/"other"').status_code == 200


def test_a_page_etag_changes_with_its_items_and_its_next_cursor(
    client: TestClient, user: ApiUser
) -> None:
    first, second = create(client, user, "first"), create(client, user, "second")
    path, params = "/api/v1/todos", {"limit": 2, "sort": "created_at"}
    etags = [page(client, user, path, **params).headers["etag"]]

    # An item on the page changes.
    patched = client.patch(
        f"/api/v1/todos/{first['id']}", json={"completed": True}, headers=user.headers
    )
    assert patched.status_code == 200
    etags.append(page(client, user, path, **params).headers["etag"])
    # Same items, but now there is a next page: only next_cursor differs.
    create(client, user, "third")
    third_page = page(client, user, path, **params)
    assert third_page.json()["next_cursor"] is not None
    assert [t["id"] for t in third_page.json()["items"]] == [first["id"], second["id"]]
    etags.append(third_page.headers["etag"])

    assert len(set(etags)) == 3
    assert page(client, user, path, etags[0], **params).status_code == 200
    assert page(client, user, path, etags[-1], **params).status_code == 304


def test_a_change_off_the_page_keeps_its_etag(client: TestClient, user: ApiUser) -> None:
    first = create(client, user, "first")
    create(client, user, "second")
    last = create(client, user, "third")
    path, params = "/api/v1/todos", {"limit": 1, "sort": "created_at"}
    before = page(client, user, path, **params)
    assert [t["id"] for t in before.json()["items"]] == [first["id"]]

    client.patch(f"/api/v1/todos/{last['id']}", json={"title": "renamed"}, headers=user.headers)

    assert page(client, user, path, before.headers["etag"], **params).status_code == 304


def test_lists_answer_304_like_todos(client: TestClient, user: ApiUser) -> None:
    lists = page(client, user, "/api/v1/lists")
    assert lists.headers["cache-control"] == REVALIDATE
    assert lists.headers["etag"].startswith('W/"')
    assert page(client, user, "/api/v1/lists", lists.headers["etag"]).status_code == 304

    created = client.post("/api/v1/lists", json={"name": "errands"}, headers=user.headers)
    assert created.headers["cache-control"] == "no-store"
    list_id, etag = created.json()["id"], created.headers["etag"]
    read = page(client, user, f"/api/v1/lists/{list_id}")
    assert read.headers["etag"] == etag
    assert read.headers["cache-control"] == REVALIDATE
    unchanged = page(client, user, f"/api/v1/lists/{list_id}", etag)
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["cache-control"] == REVALIDATE
    # The page of lists changed with the new list; the list changes with a rename.
    assert page(client, user, "/api/v1/lists", lists.headers["etag"]).status_code == 200
    client.patch(f"/api/v1/lists/{list_id}", json={"name": "chores"}, headers=user.headers)
    assert page(client, user, f"/api/v1/lists/{list_id}", etag).status_code == 200


def test_a_todo_read_is_revalidated(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user, "one")
    read = page(client, user, f"/api/v1/todos/{todo['id']}")
    assert read.headers["cache-control"] == REVALIDATE
    assert (
        page(client, user, f"/api/v1/todos/{todo['id']}", read.headers["etag"]).status_code == 304
    )


def test_everything_else_is_no_store(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user, "one")
    responses = {
        "write": client.patch(
            f"/api/v1/todos/{todo['id']}", json={"title": "t"}, headers=user.headers
        ),
        "feed": client.get("/api/v1/changes", headers=user.headers),
        "me": client.get("/api/v1/users/me", headers=user.headers),
        "stats": client.get("/api/v1/todos/stats", headers=user.headers),
        "token": client.post(
            "/api/v1/auth/token", data={"username": user.email, "password": user.password}
        ),
        "404": client.get(
            "/api/v1/lists/00000000-0000-0000-0000-000000000000", headers=user.headers
        ),
        "401": client.get("/api/v1/todos"),
    }
    for name, response in responses.items():
        assert response.status_code < 500, name
        assert response.headers["cache-control"] == "no-store", name
