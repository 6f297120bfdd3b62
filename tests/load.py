"""What the load tests share: every request recorded with its answer, and what a todo may hold.

tests/faults (one gunicorn, database faults) and tests/cluster (replicas behind a load
balancer) drive the real service from client threads; both check every response and every
acknowledged write against the database afterwards.
"""

import json
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx2 as httpx
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

NO_RESPONSE = -1  # status of a request that got no HTTP response at all
# What a stack trace or a leaked query looks like in a response body.
LEAKS = ("traceback", 'file "', "psycopg", "sqlalchemy", "select ", "insert into", "update todos")
# The header the cluster's load balancer adds: which replica (its port) answered.
SERVED_BY = "X-Served-By"

State = tuple[str, str | None, bool]  # title, description, completed


@dataclass
class Record:
    op: str
    actor: str
    todo_id: str | None
    payload: dict[str, Any] | None
    status: int
    body: str
    started: float
    elapsed: float
    etag: str | None = None
    served_by: str | None = None
    request_id: str | None = None  # the app echoes it on every answer; a proxy's own has none
    sent_id: str = ""  # the X-Request-ID this request was sent with

    @property
    def ended(self) -> float:
        return self.started + self.elapsed

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def __str__(self) -> str:
        via = f" via {self.served_by}" if self.served_by else ""
        return (
            f"{self.actor} {self.op} {self.todo_id or ''} {self.payload or ''} -> {self.status}"
            f"{via} in {self.elapsed:.3f} s: {self.body[:300]!r}"
        )


class Recorder:
    """Every request any thread sent, with what came back and how long it took."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[Record] = []

    def send(
        self,
        client: httpx.Client,
        actor: str,
        op: str,
        method: str,
        url: str,
        *,
        todo_id: str | None = None,
        payload: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> Record:
        started = time.monotonic()
        answer: dict[str, str | None] = {}
        # Our own request id: the app echoes it, a proxy's log names it (the request can be
        # found there even when no answer came back).
        sent_id = uuid.uuid4().hex
        headers = {"X-Request-ID": sent_id, **(headers or {})}
        try:
            response = client.request(method, url, json=payload, data=form, headers=headers)
            status, body = response.status_code, response.text
            answer = {
                "etag": response.headers.get("ETag"),
                "served_by": response.headers.get(SERVED_BY),
                "request_id": response.headers.get("X-Request-ID"),
            }
        except httpx.TransportError as exc:
            status, body = NO_RESPONSE, f"{type(exc).__name__}: {exc}"
        elapsed = time.monotonic() - started
        record = Record(
            op, actor, todo_id, payload, status, body, started, elapsed, **answer, sent_id=sent_id
        )
        with self._lock:
            self._records.append(record)
        return record

    def snapshot(self) -> list[Record]:
        with self._lock:
            return list(self._records)


def stored_rows(
    database_url: str, sql: str, params: dict[str, Any] | None = None, *, application_name: str
) -> list[tuple[Any, ...]]:
    """One query on a connection of its own, straight to the database (not the service's):
    what is really stored, to hold against what the clients were told."""
    engine = create_engine(
        database_url,
        poolclass=NullPool,
        connect_args={"application_name": application_name, "connect_timeout": 3},
    )
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params or {})]
    finally:
        engine.dispose()


@dataclass
class Attempt:
    state: State | None  # None: a delete
    acked: bool


def allowed_states(attempts: Sequence[Attempt]) -> list[State | None]:
    """What a todo may hold now: its last acknowledged state first, then failed writes after it."""
    last = max(i for i, attempt in enumerate(attempts) if attempt.acked)
    return [attempts[last].state] + [attempt.state for attempt in attempts[last + 1 :]]


def clean_503(record: Record) -> bool:
    """A 503 as the contract words it: a JSON body, no internals."""
    if any(leak in record.body.lower() for leak in LEAKS):
        return False
    try:
        body = json.loads(record.body)
    except ValueError:
        return False
    if record.op == "ready":
        return bool(body == {"status": "unavailable", "database": "error"})
    return isinstance(body, dict) and set(body) == {"detail"} and isinstance(body["detail"], str)


def listing(records: Sequence[Record], limit: int = 8) -> str:
    lines = [str(r) for r in records[:limit]]
    if len(records) > limit:
        lines.append(f"... and {len(records) - limit} more")
    return "\n".join(lines)


class TodoWriter(Protocol):
    """A client thread that owns its todos and writes them one request at a time."""

    live: list[str]  # its todos that were created and not yet (tried to be) deleted

    @property
    def name(self) -> str: ...

    def create(self, http: httpx.Client, recorder: Recorder, n: int) -> None: ...
    def patch(self, http: httpx.Client, recorder: Recorder, todo_id: str, n: int) -> None: ...
    def read(self, http: httpx.Client, recorder: Recorder, todo_id: str) -> None: ...
    def delete(self, http: httpx.Client, recorder: Recorder, todo_id: str) -> None: ...


def write_rounds(
    writer: TodoWriter,
    http: httpx.Client,
    recorder: Recorder,
    stop: threading.Event,
    *,
    live_todos: int,
    pause: float,
) -> None:
    """Round after round until stopped: create; patch and read one live todo; delete the
    oldest when more than live_todos are live; list."""
    n = 0
    while not stop.is_set():
        n += 1
        writer.create(http, recorder, n)
        if writer.live:
            todo_id = writer.live[n % len(writer.live)]
            writer.patch(http, recorder, todo_id, n)
            writer.read(http, recorder, todo_id)
        if len(writer.live) > live_todos:
            # A todo is never touched again after a delete was tried, whatever came back.
            writer.delete(http, recorder, writer.live.pop(0))
        recorder.send(http, writer.name, "list", "GET", "/api/v1/todos?limit=5")
        stop.wait(pause)
