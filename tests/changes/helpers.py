"""A feed client: keeps a local copy the way the contract tells a sync client to."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx

from tests.conftest import ApiUser

FEED = "/api/v1/changes"


@dataclass
class Replica:
    """What a client holds after following the feed: objects by (type, id)."""

    user: ApiUser
    token: str | None = None
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pages: int = 0

    def news(self, client: Any, limit: int = 100) -> list[dict[str, Any]]:
        """sync(), less the changes that only repeat what this copy already held.

        The feed may deliver an object again (on PostgreSQL, while any transaction in the
        cluster stays open, the watermark waits for it); the guarantee is about never
        missing one, and a repeat of the state held is harmless."""
        before = dict(self.objects)

        def new(change: dict[str, Any]) -> bool:
            held = before.get((change["type"], change["id"]))
            return held is not None if change["deleted"] else held != change["item"]

        return [change for change in self.sync(client, limit) if new(change)]

    def sync(self, client: Any, limit: int = 100) -> list[dict[str, Any]]:
        """Follow next_token until has_more is false; the changes seen."""
        seen: list[dict[str, Any]] = []
        while True:
            body = page(client, self.user, self.token, limit)
            self.pages += 1
            for change in body["changes"]:
                assert (change["item"] is None) == change["deleted"], change
                key = (change["type"], change["id"])
                if change["deleted"]:
                    self.objects.pop(key, None)
                else:
                    self.objects[key] = change["item"]
            seen += body["changes"]
            self.token = body["next_token"]
            if not body["has_more"]:
                return seen


def page(client: Any, user: ApiUser, since: str | None, limit: int = 100) -> dict[str, Any]:
    response = feed(client, user, since, limit)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"changes", "next_token", "has_more"}
    return body


def feed(client: Any, user: ApiUser, since: str | None, limit: int = 100) -> httpx.Response:
    params: dict[str, Any] = {"limit": limit} | ({"since": since} if since is not None else {})
    response: httpx.Response = client.get(FEED, params=params, headers=user.headers)
    return response


def server_state(client: Any, user: ApiUser) -> dict[tuple[str, str], dict[str, Any]]:
    """Every list and todo of the user, read through the ordinary routes."""
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, path in (("list", "/api/v1/lists"), ("todo", "/api/v1/todos")):
        cursor = None
        while True:
            params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
            body = client.get(path, params=params, headers=user.headers).json()
            state |= {(kind, item["id"]): item for item in body["items"]}
            cursor = body["next_cursor"]
            if cursor is None:
                break
    return state


def wait_feed(
    client: Any, user: ApiUser, since: str | None, wait: Any, limit: int = 100
) -> httpx.Response:
    """GET /changes with `wait` (as given: the 422 tests pass bad values); an HTTP client's
    own timeout must outlast the wait."""
    params: dict[str, Any] = {"limit": limit, "wait": wait}
    if since is not None:
        params["since"] = since
    response: httpx.Response = client.get(FEED, params=params, headers=user.headers)
    return response


def wait_until(condition: Callable[[], bool], timeout: float = 20) -> None:
    """Observe a state the test sets up (a request waiting), not a time that passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the wait was not set up in time"
        time.sleep(0.02)


def synced(client: Any, user: ApiUser) -> str:
    """A token with nothing after it. On PostgreSQL a page may repeat changes while another
    transaction in the cluster stays open (see Replica.news): read until one is empty."""
    replica = Replica(user)
    replica.sync(client)
    bodies: list[dict[str, Any]] = []

    def quiet() -> bool:
        bodies.append(page(client, user, bodies[-1]["next_token"] if bodies else replica.token))
        return not bodies[-1]["changes"]

    # As long as a transaction anywhere in the cluster stays open (other test runs too).
    wait_until(quiet, timeout=180)
    token: str = bodies[-1]["next_token"]
    return token


def waiting_count(client: Any) -> int:
    """How many feed requests the in-process app has waiting."""
    return len(client.app.state.change_waiters)
