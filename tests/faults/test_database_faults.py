"""Database faults under load, against the real service (gunicorn + uvicorn workers).

The service runs on a private PostgreSQL cluster (tests/faults/cluster.py) that the test stops,
restarts and cuts the connections of, while a few client threads keep writing. Every response
is recorded. The contract (shared/spec/API.md): a database that is unavailable is a 503
{"detail": ...} and never a stack trace; /health never touches the database; /health/ready is
503 while it is unreachable; and the service recovers by itself when the database is back.

No acknowledged write may be lost: each writer thread owns its own user and todos and writes
them one request at a time, so the final state of every todo is known exactly — the state of
its last acknowledged write, or of one of the failed writes after it (a failed request may or
may not have committed, but never half: title, description and completed go together).
"""

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import PASSWORD
from tests.faults.cluster import PostgresCluster
from tests.load import (
    NO_RESPONSE,
    Attempt,
    Record,
    Recorder,
    State,
    allowed_states,
    clean_503,
    listing,
    stored_rows,
    write_rounds,
)
from tests.runtime.server import Server, app_env, gunicorn

pytestmark = pytest.mark.timeout(150)

APP_NAME = "todo-api"  # the service's application_name in pg_stat_activity (project_name)
WORKERS = 2
WRITERS = 3
REQUEST_TIMEOUT = 10.0  # the client's bound; anything over MAX_ELAPSED fails the test anyway
MAX_ELAPSED = 5.0  # connect timeout 2 s: no request may take longer, database up or down
RECOVERY_TIMEOUT = 15.0
WARMUP = 2.0
DOWNTIME = 3.0
AFTER_RECOVERY = 1.5
KILL_ROUNDS = 5
KILL_INTERVAL = 0.6
PAUSE = 0.03  # between a writer's rounds, so the load does not starve the 2-core machine
PROBE_INTERVAL = 0.1
LIVE_TODOS = 4  # a writer deletes its oldest todo when it has more than this
STATEMENT_TIMEOUT_MS = 1000
SETTLE_TIMEOUT = 5.0

WRITES = frozenset({"create", "patch", "delete"})
API_OPS = WRITES | {"read", "list"}


def _client(base_url: str, headers: dict[str, str] | None = None) -> httpx.Client:
    # No keep-alive: a new connection per request, so the requests spread over the workers.
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.Client(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT, limits=limits)


# -- the write workload -------------------------------------------------------------------------


def _state(body: dict[str, Any]) -> State:
    return (body["title"], body["description"], body["completed"])


def _payload(state: State) -> dict[str, Any]:
    return {"title": state[0], "description": state[1], "completed": state[2]}


@dataclass
class Writer:
    """One client thread with a user of its own; writes its todos one request at a time."""

    index: int
    user_id: str
    token: str
    todos: dict[str, list[Attempt]] = field(default_factory=dict)
    failed_creates: list[State] = field(default_factory=list)
    inconsistencies: list[str] = field(default_factory=list)
    live: list[str] = field(default_factory=list)

    @property
    def actor(self) -> str:
        return f"writer-{self.index}"

    @property
    def name(self) -> str:
        return self.actor

    def run(self, base_url: str, recorder: Recorder, stop: threading.Event) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with _client(base_url, headers) as client:
            write_rounds(self, client, recorder, stop, live_todos=LIVE_TODOS, pause=PAUSE)

    def create(self, client: httpx.Client, recorder: Recorder, n: int) -> None:
        state: State = (f"w{self.index}-{n}", f"created in round {n}", False)
        record = recorder.send(
            client, self.actor, "create", "POST", "/api/v1/todos", payload=_payload(state)
        )
        if not record.ok:
            self.failed_creates.append(state)
            return
        body = json.loads(record.body)
        record.todo_id = body["id"]
        self._check_echo(record, body, state)
        self.todos[body["id"]] = [Attempt(state, acked=True)]
        self.live.append(body["id"])

    def patch(self, client: httpx.Client, recorder: Recorder, todo_id: str, n: int) -> None:
        k = len(self.todos[todo_id])
        state: State = (f"w{self.index}-{n}-v{k}", f"patched in round {n}", k % 2 == 1)
        record = recorder.send(
            client,
            self.actor,
            "patch",
            "PATCH",
            f"/api/v1/todos/{todo_id}",
            todo_id=todo_id,
            payload=_payload(state),
        )
        self.todos[todo_id].append(Attempt(state, acked=record.ok))
        if record.ok:
            self._check_echo(record, json.loads(record.body), state)

    def read(self, client: httpx.Client, recorder: Recorder, todo_id: str) -> None:
        url = f"/api/v1/todos/{todo_id}"
        record = recorder.send(client, self.actor, "read", "GET", url, todo_id=todo_id)
        if record.ok and _state(json.loads(record.body)) not in allowed_states(self.todos[todo_id]):
            self.inconsistencies.append(f"read of something never written: {record}")

    def delete(self, client: httpx.Client, recorder: Recorder, todo_id: str) -> None:
        url = f"/api/v1/todos/{todo_id}"
        record = recorder.send(client, self.actor, "delete", "DELETE", url, todo_id=todo_id)
        self.todos[todo_id].append(Attempt(None, acked=record.ok))

    def _check_echo(self, record: Record, body: dict[str, Any], state: State) -> None:
        if _state(body) != state:
            self.inconsistencies.append(f"2xx body differs from the request: {record}")


def probe(base_url: str, recorder: Recorder, stop: threading.Event) -> None:
    with _client(base_url) as client:
        while not stop.is_set():
            recorder.send(client, "prober", "health", "GET", "/health")
            recorder.send(client, "prober", "ready", "GET", "/health/ready")
            stop.wait(PROBE_INTERVAL)


@contextmanager
def load(server: Server, writers: Sequence[Writer], recorder: Recorder) -> Iterator[None]:
    """The writers and the prober, running until the block ends (each request is bounded)."""
    stop = threading.Event()
    with ThreadPoolExecutor(len(writers) + 1) as pool:
        futures = [pool.submit(w.run, server.base_url, recorder, stop) for w in writers]
        futures.append(pool.submit(probe, server.base_url, recorder, stop))
        try:
            yield
        finally:
            stop.set()
            for future in futures:
                future.result(timeout=REQUEST_TIMEOUT * 6)  # a thread's crash fails the test


# -- the service ----------------------------------------------------------------------------------


@contextmanager
def start_service(database_url: str, tmp_path: Path, **env: str) -> Iterator[Server]:
    settings = app_env(
        database_url,
        tmp_path,
        DB_CONNECT_TIMEOUT="2",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        **env,
    )
    with gunicorn(settings, tmp_path, workers=WORKERS) as server:
        deadline = time.monotonic() + 30
        # Ready means one worker answers; the worker pids are compared later, so wait for all.
        while server.log().count("Application startup complete.") < WORKERS:
            assert time.monotonic() < deadline, f"workers did not start:\n{server.log()}"
            time.sleep(0.1)
        yield server


def worker_pids(server: Server) -> set[int]:
    path = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    return {int(pid) for pid in path.read_text().split()}


def register_writers(server: Server, count: int) -> list[Writer]:
    writers = []
    with _client(server.base_url) as client:
        for index in range(count):
            email = f"writer-{index}-{time.monotonic_ns()}@example.com"
            created = client.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
            )
            assert created.status_code == 201, created.text
            token = client.post(
                "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
            )
            assert token.status_code == 200, token.text
            writers.append(Writer(index, created.json()["id"], token.json()["access_token"]))
    return writers


# -- checks ---------------------------------------------------------------------------------------


@dataclass
class WriteReport:
    acknowledged: int = 0  # 2xx creates, patches and deletes, all reflected in the database
    failed: int = 0  # writes that got no 2xx
    failed_but_applied: int = 0  # of those, committed all the same (allowed: never half)
    todos_checked: int = 0
    problems: list[str] = field(default_factory=list)


def verify_writes(database_url: str, writers: Sequence[Writer]) -> WriteReport:
    """Compare the database, read directly, with what every writer was told."""
    rows = stored_rows(
        database_url,
        "SELECT id::text, owner_id::text, title, description, completed, "
        "completed_at IS NOT NULL FROM todos",
        application_name="todo-faults-verify",
    )
    report = WriteReport()
    stored_by_owner: dict[str, dict[str, State]] = {}
    for todo_id, owner_id, title, description, completed, has_completed_at in rows:
        stored_by_owner.setdefault(owner_id, {})[todo_id] = (title, description, completed)
        if completed != has_completed_at:
            report.problems.append(
                f"todo {todo_id}: completed={completed} but completed_at is "
                f"{'set' if has_completed_at else 'null'}"
            )
    for writer in writers:
        report.problems.extend(writer.inconsistencies)
        stored = stored_by_owner.pop(writer.user_id, {})
        for todo_id, attempts in writer.todos.items():
            report.todos_checked += 1
            report.acknowledged += sum(a.acked for a in attempts)
            report.failed += sum(not a.acked for a in attempts)
            allowed = allowed_states(attempts)
            actual = stored.pop(todo_id, None)
            if actual not in allowed:
                report.problems.append(
                    f"{writer.actor} todo {todo_id}: stored {actual!r}, but the last "
                    f"acknowledged write made it {allowed[0]!r} (failed writes after it: "
                    f"{allowed[1:]!r})"
                )
            elif actual != allowed[0]:
                report.failed_but_applied += 1
        # A create that failed may have committed before its connection died: its todo must
        # then be exactly what that request sent.
        report.failed += len(writer.failed_creates)
        unclaimed = list(writer.failed_creates)
        for todo_id, state in stored.items():
            if state in unclaimed:
                unclaimed.remove(state)
                report.failed_but_applied += 1
            else:
                report.problems.append(f"{writer.actor}: unexpected todo {todo_id} {state!r}")
    for owner_id in stored_by_owner:
        report.problems.append(f"todos of an unknown owner {owner_id}")
    return report


def assert_answers(records: Sequence[Record]) -> None:
    """Every request answered, quickly, with a 2xx or a clean 503 (health always 200)."""
    no_answer = [r for r in records if r.status == NO_RESPONSE]
    assert not no_answer, f"requests without a response:\n{listing(no_answer)}"
    server_errors = [r for r in records if r.status >= 500 and r.status != 503]
    assert not server_errors, f"5xx other than 503:\n{listing(server_errors)}"
    unclean = [r for r in records if r.status == 503 and not clean_503(r)]
    assert not unclean, f"503 bodies not as the contract says:\n{listing(unclean)}"
    others = [r for r in records if not r.ok and r.status != 503]
    assert not others, f"unexpected statuses:\n{listing(others)}"
    slow = [r for r in records if r.elapsed >= MAX_ELAPSED]
    assert not slow, f"requests that took {MAX_ELAPSED} s or more:\n{listing(slow)}"
    sick = [r for r in records if r.op == "health" and r.status != 200]
    assert not sick, f"/health must never depend on the database:\n{listing(sick)}"


def recovery_times(records: Sequence[Record], since: float) -> tuple[float | None, float | None]:
    """Seconds from `since` until /health/ready said 200 and until a write succeeded (requests
    sent after `since` only)."""
    after = [r for r in records if r.started >= since and r.ok]
    ready = min((r.ended - since for r in after if r.op == "ready"), default=None)
    write = min((r.ended - since for r in after if r.op in WRITES), default=None)
    return ready, write


def wait_for_recovery(recorder: Recorder, since: float) -> tuple[float | None, float | None]:
    deadline = since + RECOVERY_TIMEOUT
    while True:
        ready, write = recovery_times(recorder.snapshot(), since)
        if (ready is not None and write is not None) or time.monotonic() > deadline:
            return ready, write
        time.sleep(0.05)


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def summarize(
    fault: str,
    records: Sequence[Record],
    report: WriteReport,
    recovery: tuple[float | None, float | None],
    server: Server,
    extra: str = "",
) -> None:
    statuses = Counter(r.status for r in records)
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    other = {s: n for s, n in statuses.items() if not 200 <= s < 300 and s != 503}
    log = server.log()
    print(
        f"\n[{fault}] requests sent: {len(records)}; answered 2xx: {ok}, 503: {statuses[503]}, "
        f"other: {sum(other.values())} {other or ''}\n"
        f"[{fault}] acknowledged writes verified in the database: {report.acknowledged} "
        f"(on {report.todos_checked} todos); failed writes: {report.failed}, of which "
        f"committed anyway (whole): {report.failed_but_applied}; problems: "
        f"{len(report.problems)}\n"
        f"[{fault}] database back -> /health/ready 200 after {_seconds(recovery[0])}, "
        f"first successful write after {_seconds(recovery[1])}\n"
        f"[{fault}] server log: {log.count('database unavailable')} 'database unavailable' "
        f"lines, {log.count('Traceback')} tracebacks{extra}"
    )


def assert_recovered(
    server: Server,
    master_pid: int,
    recovery: tuple[float | None, float | None],
    report: WriteReport,
) -> None:
    ready_after, write_after = recovery
    assert ready_after is not None, f"/health/ready not 200 within {RECOVERY_TIMEOUT} s"
    assert write_after is not None, f"no successful write within {RECOVERY_TIMEOUT} s"
    assert ready_after <= RECOVERY_TIMEOUT
    assert write_after <= RECOVERY_TIMEOUT
    assert server.process.poll() is None, f"gunicorn exited:\n{server.log()}"
    assert server.process.pid == master_pid
    assert worker_pids(server), "gunicorn has no workers"
    assert httpx.get(f"{server.base_url}/health/ready", timeout=REQUEST_TIMEOUT).status_code == 200
    assert report.acknowledged > 0
    assert not report.problems, "\n".join(report.problems[:20])


# -- the faults -----------------------------------------------------------------------------------


def test_database_stopped_under_load(
    cluster: PostgresCluster, fault_database_url: str, tmp_path: Path
) -> None:
    """pg_ctl stop -m fast for a few seconds under load, then started again."""
    with start_service(fault_database_url, tmp_path) as server:
        master_pid = server.process.pid
        writers = register_writers(server, WRITERS)
        workers_before = worker_pids(server)
        recorder = Recorder()
        with load(server, writers, recorder):
            time.sleep(WARMUP)
            cluster.stop("fast")
            down_from = time.monotonic()
            time.sleep(DOWNTIME)
            down_until = time.monotonic()
            cluster.start()
            back = time.monotonic()
            recovery = wait_for_recovery(recorder, back)
            time.sleep(AFTER_RECOVERY)
        records = recorder.snapshot()
        report = verify_writes(fault_database_url, writers)
        workers_after = worker_pids(server)
        summarize(
            "postgres stopped",
            records,
            report,
            recovery,
            server,
            f"; down for {down_until - down_from:.2f} s; workers replaced: "
            f"{sorted(workers_before - workers_after)}",
        )
        assert_answers(records)
        down = [r for r in records if r.started >= down_from and r.ended <= down_until]
        ready_down = [r for r in down if r.op == "ready"]
        health_down = [r for r in down if r.op == "health"]
        api_down = [r for r in down if r.op in API_OPS]
        assert len(ready_down) >= 3
        assert len(health_down) >= 3
        assert len(api_down) >= 10
        assert {r.status for r in ready_down} == {503}
        assert {r.status for r in health_down} == {200}
        assert {r.status for r in api_down} == {503}, "no API request can succeed while it is down"
        assert_recovered(server, master_pid, recovery, report)


def test_connections_killed_under_load(
    cluster: PostgresCluster, fault_database_url: str, tmp_path: Path
) -> None:
    """pg_terminate_backend on every connection of the service, a few times, under load."""
    with start_service(fault_database_url, tmp_path) as server:
        master_pid = server.process.pid
        writers = register_writers(server, WRITERS)
        workers_before = worker_pids(server)
        recorder = Recorder()
        killed: list[int] = []
        with load(server, writers, recorder):
            time.sleep(WARMUP)
            for round_ in range(KILL_ROUNDS):
                if round_:
                    time.sleep(KILL_INTERVAL)
                killed.append(cluster.terminate_backends(APP_NAME))
            back = time.monotonic()
            recovery = wait_for_recovery(recorder, back)
            time.sleep(AFTER_RECOVERY)
        records = recorder.snapshot()
        report = verify_writes(fault_database_url, writers)
        workers_after = worker_pids(server)
        summarize(
            "connections killed",
            records,
            report,
            recovery,
            server,
            f"; backends killed per round: {killed}; workers replaced: "
            f"{sorted(workers_before - workers_after)} (times from the last kill)",
        )
        assert sum(killed) > 0, "the service had no connections to kill"
        assert_answers(records)
        assert_recovered(server, master_pid, recovery, report)


def _busy_app_connections(cluster: PostgresCluster) -> list[tuple[Any, ...]]:
    return cluster.execute(
        "SELECT pid, state, left(query, 100) FROM pg_stat_activity "
        "WHERE application_name = :name "
        "AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')",
        {"name": APP_NAME},
    )


def _stored_todos(database_url: str) -> dict[str, tuple[str, bool]]:
    engine = create_engine(
        database_url, poolclass=NullPool, connect_args={"application_name": "todo-faults-verify"}
    )
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id::text, title, completed FROM todos")).all()
    finally:
        engine.dispose()
    return {todo_id: (title, completed) for todo_id, title, completed in rows}


def test_statement_timeout_on_a_locked_table(
    cluster: PostgresCluster, fault_database_url: str, tmp_path: Path
) -> None:
    """A table locked by someone else: requests that need it get a 503 after the statement
    timeout instead of hanging; the rest keep working; nothing is left in a transaction."""
    env = {"DB_STATEMENT_TIMEOUT_MS": str(STATEMENT_TIMEOUT_MS)}
    with start_service(fault_database_url, tmp_path, **env) as server:
        writer = register_writers(server, 1)[0]
        headers = {"Authorization": f"Bearer {writer.token}"}
        with _client(server.base_url, headers) as client:
            created = [client.post("/api/v1/todos", json={"title": f"before {i}"}) for i in (0, 1)]
        assert [r.status_code for r in created] == [201, 201]
        first, second = (r.json()["id"] for r in created)
        before = _stored_todos(fault_database_url)
        blocked_requests = [
            ("list", "GET", "/api/v1/todos", None),
            ("stats", "GET", "/api/v1/todos/stats", None),
            ("read", "GET", f"/api/v1/todos/{first}", None),
            ("create", "POST", "/api/v1/todos", {"title": "while locked"}),
            ("patch", "PATCH", f"/api/v1/todos/{second}", {"title": "locked", "completed": True}),
            ("delete", "DELETE", f"/api/v1/todos/{first}", None),
        ]
        free_requests = [
            ("health", "GET", "/health"),
            ("ready", "GET", "/health/ready"),
            ("me", "GET", "/api/v1/users/me"),
        ]
        recorder = Recorder()

        def send(op: str, method: str, url: str, payload: dict[str, Any] | None = None) -> Record:
            with _client(server.base_url, headers) as client:
                return recorder.send(client, "client", op, method, url, payload=payload)

        locker = create_engine(
            fault_database_url,
            poolclass=NullPool,
            connect_args={"application_name": "todo-faults-locker", "connect_timeout": 3},
        )
        try:
            with locker.connect() as connection:
                connection.execute(text("LOCK TABLE todos IN ACCESS EXCLUSIVE MODE"))
                with ThreadPoolExecutor(len(blocked_requests)) as pool:
                    pending = [pool.submit(send, *request) for request in blocked_requests]
                    time.sleep(0.3)  # they are waiting for the lock now
                    free = [send(*request) for request in free_requests]
                    blocked = [future.result() for future in pending]
                connection.rollback()  # releases the lock
        finally:
            locker.dispose()
        released = time.monotonic()
        after_release = _stored_todos(fault_database_url)
        busy = _busy_app_connections(cluster)
        while busy and time.monotonic() < released + SETTLE_TIMEOUT:
            time.sleep(0.1)
            busy = _busy_app_connections(cluster)
        settled = time.monotonic() - released
        with _client(server.base_url, headers) as client:
            works_again = [
                client.get("/api/v1/todos").status_code,
                client.post("/api/v1/todos", json={"title": "after"}).status_code,
                client.patch(f"/api/v1/todos/{second}", json={"completed": True}).status_code,
                client.delete(f"/api/v1/todos/{first}").status_code,
                client.get("/health/ready").status_code,
            ]
        print(
            f"\n[statement timeout {STATEMENT_TIMEOUT_MS} ms, todos locked]\n"
            + "\n".join(f"  blocked: {r}" for r in blocked)
            + "\n"
            + "\n".join(f"  free:    {r}" for r in free)
            + f"\n  after release: {works_again}; app connections busy after "
            f"{settled:.2f} s: {busy}"
        )
        assert_answers([*blocked, *free])
        for record in blocked:
            assert record.status == 503, str(record)
            assert STATEMENT_TIMEOUT_MS / 1000 * 0.9 <= record.elapsed < 3.0, str(record)
        for record in free:
            assert record.status == 200, str(record)
        assert after_release == before, "a request that got a 503 changed the data"
        assert busy == [], "connections left active or idle in transaction"
        assert works_again == [200, 201, 200, 204, 200]
        assert server.process.poll() is None
