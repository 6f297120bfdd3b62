"""The load client: several users at once, over keep-alive connections through HAProxy.

Each actor thread has a user of its own and works its own todos one request at a time: an
idempotent create (a fresh Idempotency-Key, the same key and body again after a connection
error, a 502/504 from the load balancer or a 503, as a careful client retries), a PATCH with
If-Match, a read, a delete of its oldest todo, a list. So the final state of every todo is
known exactly: its last acknowledged write, or one of the unacknowledged writes after it.

A create's description carries its Idempotency-Key and PATCHes never change it, so the
database shows directly how many todos each key made: one for an acknowledged create, at most
one for a create that never got an answer, never two.
"""

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx

from tests.conftest import PASSWORD
from tests.load import (
    NO_RESPONSE,
    Attempt,
    Record,
    Recorder,
    State,
    allowed_states,
    stored_rows,
    write_rounds,
)

ACTORS = 6
PAUSE = 0.05  # between an actor's rounds: a steady load the 2-core machine can carry
LIVE_TODOS = 4  # an actor deletes its oldest todo when it has more than this
REQUEST_TIMEOUT = 10.0
CREATE_TRIES = 8
CREATE_RETRY_PAUSE = 0.25
# Answers after which a careful client sends the same idempotent create again.
RETRIED = frozenset({NO_RESPONSE, 502, 503, 504})
WRITES = frozenset({"create", "patch", "delete"})


@dataclass
class Create:
    key: str
    state: State
    todo_id: str | None = None  # set when a 2xx came back


@dataclass
class Actor:
    """One client thread with a user of its own."""

    name: str
    email: str
    user_id: str = ""
    token: str = ""
    creates: list[Create] = field(default_factory=list)
    todos: dict[str, list[Attempt]] = field(default_factory=dict)
    etags: dict[str, str] = field(default_factory=dict)
    live: list[str] = field(default_factory=list)
    inconsistencies: list[str] = field(default_factory=list)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def uncertain(self, todo_id: str) -> bool:
        """Some write to this todo got no 2xx: its ETag (or its existence) may have moved."""
        return any(not attempt.acked for attempt in self.todos[todo_id])

    def run(self, base_url: str, recorder: Recorder, stop: threading.Event) -> None:
        with client(base_url, self.headers()) as http:
            write_rounds(self, http, recorder, stop, live_todos=LIVE_TODOS, pause=PAUSE)

    def create_one(self, base_url: str, recorder: Recorder) -> str:
        """One todo (for a reader that never writes); its id."""
        with client(base_url, self.headers()) as http:
            self.create(http, recorder, 1)
        todo_id = self.creates[-1].todo_id
        assert todo_id is not None, "the create was not acknowledged"
        return todo_id

    def create(self, http: httpx.Client, recorder: Recorder, n: int) -> None:
        key = f"{self.name}-{n}-{uuid.uuid4().hex[:8]}"
        create = Create(key, (f"{self.name} #{n}", f"key {key}", False))
        self.creates.append(create)
        payload = {"title": create.state[0], "description": create.state[1]}
        for attempt in range(CREATE_TRIES):
            if attempt:
                time.sleep(CREATE_RETRY_PAUSE)
            record = recorder.send(
                http,
                self.name,
                "create",
                "POST",
                "/api/v1/todos",
                payload=payload,
                headers={"Idempotency-Key": key},
            )
            if record.status not in RETRIED:
                break
        if not record.ok:
            return
        body = json.loads(record.body)
        record.todo_id = create.todo_id = body["id"]
        self._check_echo(record, body, create.state)
        self.todos[body["id"]] = [Attempt(create.state, acked=True)]
        self.etags[body["id"]] = str(record.etag)
        self.live.append(body["id"])

    def patch(self, http: httpx.Client, recorder: Recorder, todo_id: str, n: int) -> None:
        previous = self.todos[todo_id][-1].state
        assert previous is not None
        k = len(self.todos[todo_id])
        state: State = (f"{self.name} #{n} v{k}", previous[1], k % 2 == 1)
        record = recorder.send(
            http,
            self.name,
            "patch",
            "PATCH",
            f"/api/v1/todos/{todo_id}",
            todo_id=todo_id,
            payload={"title": state[0], "completed": state[2]},
            headers={"If-Match": self.etags[todo_id]},
        )
        if record.status == 412 and not self.uncertain(todo_id):
            self.inconsistencies.append(f"412 with the latest ETag we were given: {record}")
        self.todos[todo_id].append(Attempt(state, acked=record.ok))
        if record.ok:
            self.etags[todo_id] = str(record.etag)
            self._check_echo(record, json.loads(record.body), state)

    def read(self, http: httpx.Client, recorder: Recorder, todo_id: str) -> None:
        url = f"/api/v1/todos/{todo_id}"
        record = recorder.send(http, self.name, "read", "GET", url, todo_id=todo_id)
        if not record.ok:
            return
        if _state(json.loads(record.body)) not in allowed_states(self.todos[todo_id]):
            self.inconsistencies.append(f"read of something never written: {record}")
        # The ETag of what is stored now: a PATCH that failed but committed moved it.
        self.etags[todo_id] = str(record.etag)

    def delete(self, http: httpx.Client, recorder: Recorder, todo_id: str) -> None:
        url = f"/api/v1/todos/{todo_id}"
        record = recorder.send(http, self.name, "delete", "DELETE", url, todo_id=todo_id)
        if record.status == 404:
            self.inconsistencies.append(f"a todo we never deleted is gone: {record}")
        self.todos[todo_id].append(Attempt(None, acked=record.ok))

    def _check_echo(self, record: Record, body: dict[str, Any], state: State) -> None:
        if _state(body) != state:
            self.inconsistencies.append(f"2xx body differs from the request: {record}")


def _state(body: dict[str, Any]) -> State:
    return (body["title"], body["description"], body["completed"])


def client(base_url: str, headers: dict[str, str] | None = None) -> httpx.Client:
    """Keep-alive connections, as a real client (or an ingress) holds them."""
    return httpx.Client(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT)


def sign_up(base_url: str, recorder: Recorder, names: Sequence[str]) -> list[Actor]:
    """Register and log in one user per actor, through the load balancer (recorded too)."""
    actors = []
    with client(base_url) as http:
        for name in names:
            actor = Actor(name, f"{name}-{uuid.uuid4().hex[:10]}@example.com")
            body = {"email": actor.email, "password": PASSWORD}
            created = recorder.send(
                http, name, "register", "POST", "/api/v1/auth/register", payload=body
            )
            assert created.status == 201, str(created)
            actor.user_id = json.loads(created.body)["id"]
            form = {"username": actor.email, "password": PASSWORD}
            token = recorder.send(http, name, "login", "POST", "/api/v1/auth/token", form=form)
            assert token.status == 200, str(token)
            actor.token = json.loads(token.body)["access_token"]
            actors.append(actor)
    return actors


@contextmanager
def load(base_url: str, actors: Sequence[Actor], recorder: Recorder) -> Iterator[None]:
    """The actors, running until the block ends (each request is bounded)."""
    stop = threading.Event()
    with ThreadPoolExecutor(len(actors)) as pool:
        futures = [pool.submit(actor.run, base_url, recorder, stop) for actor in actors]
        try:
            yield
        finally:
            stop.set()
            for future in futures:
                # A thread's crash fails the test; CREATE_TRIES bound one round's retries.
                future.result(timeout=REQUEST_TIMEOUT * (CREATE_TRIES + 5))


# -- checks against the database ---------------------------------------------------------------


@dataclass
class Writes:
    acknowledged: int = 0  # 2xx creates, patches and deletes
    unacknowledged: int = 0  # writes that never got a 2xx (retries of one create count once)
    lost: int = 0  # acknowledged, but the database does not show it
    duplicated: int = 0  # todos beyond the first that one Idempotency-Key made
    resurrected: int = 0  # acknowledged deletes that came back
    problems: list[str] = field(default_factory=list)


def verify_writes(direct_url: str, actors: Sequence[Actor]) -> Writes:
    """Compare the database, read directly, with what every actor was told."""
    owners = [actor.user_id for actor in actors]
    rows = stored_rows(
        direct_url,
        "SELECT id::text, owner_id::text, title, description, completed FROM todos "
        "WHERE owner_id::text = ANY(:owners)",
        {"owners": owners},
        application_name="todo-cluster-verify",
    )
    stored: dict[str, dict[str, State]] = {owner: {} for owner in owners}
    for todo_id, owner_id, title, description, completed in rows:
        stored[owner_id][todo_id] = (title, description, completed)
    writes = Writes()
    for actor in actors:
        _verify_actor(actor, stored[actor.user_id], writes)
    return writes


def _verify_actor(actor: Actor, stored: dict[str, State], writes: Writes) -> None:
    writes.problems.extend(actor.inconsistencies)
    by_key = Counter(state[1] for state in stored.values())
    for create in actor.creates:
        made = by_key.pop(create.state[1], 0)
        if made > 1:
            writes.duplicated += made - 1
            writes.problems.append(f"{actor.name}: key {create.key} made {made} todos")
        if create.todo_id is None:
            writes.unacknowledged += 1
    for description, count in by_key.items():
        writes.problems.append(f"{actor.name}: {count} todo(s) of no create of ours: {description}")
    for todo_id, attempts in actor.todos.items():
        writes.acknowledged += sum(a.acked for a in attempts)
        writes.unacknowledged += sum(not a.acked for a in attempts[1:])
        allowed = allowed_states(attempts)
        actual = stored.get(todo_id)
        if actual in allowed:
            continue
        if allowed[0] is None:
            writes.resurrected += 1
        else:
            writes.lost += 1
        writes.problems.append(
            f"{actor.name} todo {todo_id}: stored {actual!r}, but the last acknowledged write "
            f"made it {allowed[0]!r} (unacknowledged writes after it: {allowed[1:]!r})"
        )
