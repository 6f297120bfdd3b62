"""Fault injection against the real service: a killed worker, slow and broken clients, a tiny pool.

Every test starts gunicorn with uvicorn workers on a fresh PostgreSQL database and checks,
besides the answers, that the service comes back to normal afterwards: it serves, and its
database pool is idle (no connection left 'active' or 'idle in transaction').

Run with `pytest -s` to see the numbers each fault produced.
"""

import os
import re
import signal
import socket
import statistics
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx2 as httpx
from sqlalchemy import create_engine, text

from tests.conftest import PASSWORD, TempPostgres
from tests.runtime.server import Server, app_env, gunicorn

WORKERS = 3
POOL_SIZE, MAX_OVERFLOW = 10, 0  # the app's defaults (app/config.py)
BUSY_STATES = frozenset({"active", "idle in transaction", "idle in transaction (aborted)"})
APPLICATION_NAME = "todo-api"

# Worker kill under load.
LOAD_CLIENTS = 6
WARMUP_SECONDS = 2.0
TAIL_SECONDS = 2.0
LOAD_LIMIT_SECONDS = 40.0
REQUEST_TIMEOUT = 10.0
MAX_GAP_SECONDS = 5.0

# Slowloris.
SLOW_SOCKETS = 100
DRIP_INTERVAL = 0.5
DRIP_SECONDS = 5.0

# Huge headers.
HUGE_HEADER_BYTES = 100_000
MANY_HEADERS = 200


# --- fixtures and helpers ------------------------------------------------------------------


def _env(database: TempPostgres, tmp_path: Path, **extra: str) -> dict[str, str]:
    return app_env(database.url, tmp_path, **extra)


@dataclass(frozen=True)
class Account:
    email: str
    headers: dict[str, str]


def _sign_up(server: Server) -> Account:
    email = f"fault-{uuid.uuid4().hex[:10]}@example.com"
    with server.client() as client:
        registered = client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        token = _login(client, email)
    return Account(email, {"Authorization": f"Bearer {token}"})


def _login(client: httpx.Client, email: str) -> str:
    response = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _one_shot_client(base_url: str, headers: dict[str, str] | None = None) -> httpx.Client:
    """A client that opens a new connection for every request (none is kept alive), so the
    requests spread over the workers like ones from many different clients."""
    return httpx.Client(
        base_url=base_url,
        headers=headers,
        timeout=REQUEST_TIMEOUT,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


def _address(server: Server) -> tuple[str, int]:
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    assert host == "127.0.0.1"
    return host, int(port)


def _worker_pids(server: Server) -> list[int]:
    path = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    return [int(pid) for pid in path.read_text().split()]


def _alive(pid: int) -> bool:
    """Running (a zombie, killed but not yet reaped, counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> float | None:
    """Seconds until `condition` held, or None if it did not within `timeout`."""
    start = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(step)


def _app_connections(database: TempPostgres) -> list[str]:
    """The state of every connection the service holds to its database."""
    engine = create_engine(database.admin_url)
    try:
        with engine.connect() as connection:
            states = connection.execute(
                text(
                    "SELECT coalesce(state, '') FROM pg_stat_activity"
                    " WHERE datname = :name AND application_name = :app"
                ),
                {"name": database.name, "app": APPLICATION_NAME},
            ).scalars()
            return list(states)
    finally:
        engine.dispose()


def _assert_pool_idle(database: TempPostgres, max_connections: int, timeout: float = 5) -> float:
    """Wait (bounded) for the service's connections to settle; seconds it took."""
    states: list[str] = []

    def idle() -> bool:
        nonlocal states
        states = _app_connections(database)
        return not BUSY_STATES.intersection(states) and len(states) <= max_connections

    waited = _wait_until(idle, timeout, step=0.2)
    assert waited is not None, f"connections did not settle in {timeout} s: {Counter(states)}"
    print(f"  pool: {len(states)} connection(s) {dict(Counter(states))}, settled in {waited:.2f} s")
    return waited


def _assert_serving(server: Server, account: Account) -> float:
    """Normal requests are answered; seconds they took."""
    start = time.monotonic()
    with httpx.Client(base_url=server.base_url, timeout=REQUEST_TIMEOUT) as client:
        assert client.get("/health").status_code == 200
        listed = client.get("/api/v1/todos", headers=account.headers)
        assert listed.status_code == 200, listed.text
        created = client.post("/api/v1/todos", json={"title": "after"}, headers=account.headers)
        assert created.status_code == 201, created.text
    return time.monotonic() - start


@dataclass
class Tally:
    """What a fault did to the requests sent through it."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, status: int | None, error: str | None = None) -> None:
        self.sent += 1
        if status is None:
            self.errors[error or "closed"] += 1
        else:
            self.statuses[status] += 1

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def unavailable(self) -> int:
        return self.statuses[503]

    @property
    def other(self) -> dict[int, int]:
        return {s: n for s, n in self.statuses.items() if not 200 <= s < 300 and s != 503}

    @property
    def server_errors(self) -> dict[int, int]:
        return {s: n for s, n in self.statuses.items() if s >= 500 and s != 503}

    def report(self, title: str, **extra: object) -> None:
        print(
            f"\n[{title}] sent={self.sent} 2xx={self.ok} 503={self.unavailable}"
            f" other={self.other} connection_errors={sum(self.errors.values())}"
            f" {dict(self.errors) if self.errors else ''}"
        )
        for name, value in extra.items():
            shown = f"{value:.3f}" if isinstance(value, float) else value
            print(f"  {name}: {shown}")


def _read_status(sock: socket.socket) -> int | None:
    """The status of the response on `sock`, or None if the server closed it without one."""
    head = b""
    try:
        while b"\r\n" not in head and len(head) < 4096:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    except (ConnectionResetError, BrokenPipeError):
        return None
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", head)
    return int(match.group(1)) if match else None


def _exchange(server: Server, request: bytes) -> int | None:
    """Send a raw request; the answer's status, or None if the connection was closed instead."""
    with socket.create_connection(_address(server), timeout=REQUEST_TIMEOUT) as sock:
        try:
            sock.sendall(request)
        except (ConnectionResetError, BrokenPipeError):
            return None
        return _read_status(sock)


def _reset_on_close(sock: socket.socket) -> None:
    """close() sends a RST instead of a FIN: an abrupt disconnect."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _access_statuses(server: Server, method: str, path: str) -> list[int]:
    """Statuses of the app's access-log lines for one route, in order."""
    pattern = re.compile(rf"\] {method} {re.escape(path)} (\d{{3}}) ")
    return [int(m.group(1)) for m in pattern.finditer(server.log())]


# --- 1. a worker killed with SIGKILL under load --------------------------------------------


@dataclass(frozen=True)
class Outcome:
    started: float
    ended: float
    status: int | None
    error: str | None = None


class Load:
    """Continuous GET/POST /api/v1/todos from several threads, a new connection per request."""

    def __init__(self, base_url: str, headers: dict[str, str], clients: int) -> None:
        self.base_url, self.headers = base_url, headers
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), name=f"load-{i}") for i in range(clients)
        ]

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT + 5)
        assert not any(thread.is_alive() for thread in self._threads)

    def _run(self, index: int) -> None:
        deadline = time.monotonic() + LOAD_LIMIT_SECONDS
        sent = 0
        with _one_shot_client(self.base_url, self.headers) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                sent += 1
                started = time.monotonic()
                try:
                    if sent % 2:
                        response = client.get("/api/v1/todos", params={"limit": 5})
                    else:
                        response = client.post(
                            "/api/v1/todos", json={"title": f"load {index}-{sent}"}
                        )
                    outcome = Outcome(started, time.monotonic(), response.status_code)
                except httpx.TransportError as exc:
                    outcome = Outcome(started, time.monotonic(), None, type(exc).__name__)
                with self._lock:
                    self.outcomes.append(outcome)


def test_a_worker_killed_under_load_is_replaced_and_the_service_keeps_answering(
    database: TempPostgres, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    env = _env(database, tmp_path, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    with gunicorn(env, tmp_path, workers=WORKERS) as server:
        master = server.process.pid
        account = _sign_up(server)
        before = _worker_pids(server)
        assert len(before) == WORKERS

        with Load(server.base_url, account.headers, LOAD_CLIENTS) as load:
            time.sleep(WARMUP_SECONDS)
            victim = before[0]
            killed_at = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            assert _wait_until(lambda: not _alive(victim), timeout=10) is not None
            dead_at = time.monotonic()

            def replaced() -> bool:
                pids = _worker_pids(server)
                return victim not in pids and len(pids) == WORKERS

            assert _wait_until(replaced, timeout=30) is not None, server.log()[-3000:]
            replaced_at = time.monotonic()
            new = set(_worker_pids(server)) - set(before)
            assert len(new) == 1
            (replacement,) = new

            # A worker writes its metric files when it answers its first request.
            served = _wait_until(lambda: any(metrics_dir.glob(f"*_{replacement}.db")), 20)
            served_at = None if served is None else time.monotonic()
            time.sleep(TAIL_SECONDS)

        outcomes = sorted(load.outcomes, key=lambda o: o.started)
        assert server.process.poll() is None, "the master died"
        assert server.process.pid == master
        assert set(_worker_pids(server)) == (set(before) - {victim}) | {replacement}
        assert all(_alive(pid) for pid in _worker_pids(server))

        tally = Tally()
        for outcome in outcomes:
            tally.add(outcome.status, outcome.error)
        successes = [o for o in outcomes if o.status is not None and 200 <= o.status < 300]
        failures = [o for o in outcomes if o.status is None]
        answered_after = sorted(o.ended for o in successes if o.ended >= killed_at)
        gaps = [b - a for a, b in zip([killed_at, *answered_after], answered_after, strict=False)]
        tally.report(
            "worker SIGKILL under load",
            clients=LOAD_CLIENTS,
            victim=victim,
            replacement=replacement,
            worker_dead_after_s=dead_at - killed_at,
            three_workers_again_after_s=replaced_at - killed_at,
            replacement_served_after_s=None if served_at is None else served_at - killed_at,
            ok_started_after_death=sum(o.started >= dead_at for o in successes),
            longest_gap_between_2xx_after_kill_s=max(gaps, default=float("nan")),
            failed_requests_started_s_before_death=[
                round(dead_at - o.started, 3) for o in failures
            ],
        )

        assert served_at is not None, "the replacement worker answered no request"
        assert not tally.server_errors, tally.statuses
        assert tally.unavailable == 0, tally.statuses
        assert not tally.other, tally.statuses
        # Only what was in flight on the killed worker may fail: one request per client at most.
        assert len(failures) <= LOAD_CLIENTS, tally.errors
        assert all(o.started < dead_at for o in failures), "a request sent after the kill failed"
        # The others kept answering, and go on answering after the replacement.
        assert sum(o.started >= dead_at for o in successes) >= LOAD_CLIENTS
        assert max(gaps) < MAX_GAP_SECONDS, f"no answer for {max(gaps):.2f} s after the kill"
        assert answered_after[-1] > replaced_at

        _assert_serving(server, account)
        _assert_pool_idle(database, WORKERS * (POOL_SIZE + MAX_OVERFLOW))


# --- 2. slow and broken clients ------------------------------------------------------------


def _slow_request_starts(count: int) -> list[bytes]:
    """Half stop inside the request line, half inside a header; neither ever ends."""
    line = b"GET /health?pad="
    header = b"GET /api/v1/todos HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    return [line if i % 2 else header for i in range(count)]


def test_slowloris_clients_do_not_starve_normal_requests(
    database: TempPostgres, tmp_path: Path
) -> None:
    with gunicorn(_env(database, tmp_path), tmp_path, workers=WORKERS) as server:
        account = _sign_up(server)
        normal = Tally()
        latencies: dict[str, list[float]] = {"/health": [], "/api/v1/todos": []}
        closed_by_server = 0
        with ExitStack() as stack:
            slow: list[socket.socket] = []
            for start in _slow_request_starts(SLOW_SOCKETS):
                sock = stack.enter_context(socket.create_connection(_address(server), timeout=5))
                sock.sendall(start)
                slow.append(sock)
            stop = threading.Event()

            def drip() -> None:
                nonlocal closed_by_server
                open_ = list(slow)
                while open_ and not stop.wait(DRIP_INTERVAL):
                    for sock in list(open_):
                        try:
                            sock.sendall(b"a")
                        except OSError:
                            closed_by_server += 1
                            open_.remove(sock)

            dripper = threading.Thread(target=drip, name="slowloris")
            dripper.start()
            try:
                deadline = time.monotonic() + DRIP_SECONDS
                with _one_shot_client(server.base_url) as client:
                    while time.monotonic() < deadline:
                        for path, headers in (("/health", {}), ("/api/v1/todos", account.headers)):
                            started = time.monotonic()
                            try:
                                status: int | None = client.get(path, headers=headers).status_code
                                error = None
                            except httpx.TransportError as exc:
                                status, error = None, type(exc).__name__
                            latencies[path].append(time.monotonic() - started)
                            normal.add(status, error)
                        time.sleep(0.05)
            finally:
                stop.set()
                dripper.join(timeout=10)
            assert not dripper.is_alive()
            still_open = SLOW_SOCKETS - closed_by_server

        every = [s for values in latencies.values() for s in values]
        recovery_start = time.monotonic()
        _assert_serving(server, account)
        settled = _assert_pool_idle(database, WORKERS * (POOL_SIZE + MAX_OVERFLOW))
        normal.report(
            "slowloris: normal requests meanwhile",
            slow_sockets=SLOW_SOCKETS,
            slow_sockets_closed_by_server=closed_by_server,
            slow_sockets_still_open_at_end=still_open,
            **{
                f"latency_{path}_p50_ms": round(statistics.median(values) * 1000, 1)
                for path, values in latencies.items()
            },
            **{
                f"latency_{path}_max_ms": round(max(values) * 1000, 1)
                for path, values in latencies.items()
            },
            recovery_s=time.monotonic() - recovery_start - settled,
        )
        assert normal.sent >= 10
        assert normal.ok == normal.sent, (normal.statuses, normal.errors)
        assert statistics.median(every) < 0.5
        assert max(every) < 2.0


def _login_request(email: str, password: str = PASSWORD) -> bytes:
    body = urlencode({"username": email, "password": password}).encode()
    return (
        b"POST /api/v1/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def _partial_body_request(path: str, content_type: str, headers: dict[str, str]) -> bytes:
    """Announces a 1000-byte body and carries only the first 100 bytes of it."""
    extra = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n".encode()
        + extra
        + b"Content-Length: 1000\r\n\r\n"
        + b"x" * 100
    )


def test_clients_that_disconnect_mid_request_leak_nothing(
    database: TempPostgres, tmp_path: Path
) -> None:
    # Real bcrypt cost: a login takes long enough for the client to leave while it runs.
    env = _env(database, tmp_path, BCRYPT_ROUNDS="12")
    with gunicorn(env, tmp_path, workers=WORKERS) as server:
        account = _sign_up(server)
        sent = Tally()
        logins_before = len(_access_statuses(server, "POST", "/api/v1/auth/token"))
        todos_before = len(_access_statuses(server, "POST", "/api/v1/todos"))

        # Headers and part of the body, then gone (a FIN or a RST), three times per route.
        partial = [
            _partial_body_request("/api/v1/todos", "application/json", account.headers),
            _partial_body_request("/api/v1/auth/token", "application/x-www-form-urlencoded", {}),
        ]
        for attempt in range(3):
            for request in partial:
                with socket.create_connection(_address(server), timeout=5) as sock:
                    if attempt % 2:
                        _reset_on_close(sock)
                    sock.sendall(request)
                    time.sleep(0.1)
                sent.add(None, "client closed mid-body")

        # A complete login, abandoned before its answer: at once, or while bcrypt runs.
        def abandon(delay: float, reset: bool) -> None:
            with socket.create_connection(_address(server), timeout=5) as sock:
                if reset:
                    _reset_on_close(sock)
                sock.sendall(_login_request(account.email))
                time.sleep(delay)

        cases = [(0.0, False)] * 3 + [(0.1, False)] * 3 + [(0.1, True)] * 3
        with ThreadPoolExecutor(len(cases)) as pool:
            list(pool.map(lambda case: abandon(*case), cases))
        for _ in cases:
            sent.add(None, "client closed before the answer")

        # Every request that reached the app gets its access-log line once it is done.
        expected_logins = logins_before + 3 + len(cases)
        logged_in = _wait_until(
            lambda: len(_access_statuses(server, "POST", "/api/v1/auth/token")) >= expected_logins,
            timeout=30,
            step=0.2,
        )
        login_statuses = _access_statuses(server, "POST", "/api/v1/auth/token")[logins_before:]
        todo_statuses = _access_statuses(server, "POST", "/api/v1/todos")[todos_before:]

        recovery_start = time.monotonic()
        with httpx.Client(base_url=server.base_url, timeout=REQUEST_TIMEOUT) as client:
            # The abandoned logins took the email's advisory lock: it must be free again.
            _login(client, account.email)
        _assert_serving(server, account)
        _assert_pool_idle(database, WORKERS * (POOL_SIZE + MAX_OVERFLOW))
        sent.report(
            "clients disconnecting mid-request",
            server_side_login_statuses=dict(Counter(login_statuses)),
            server_side_todo_statuses=dict(Counter(todo_statuses)),
            all_logged_after_s=logged_in,
            recovery_s=time.monotonic() - recovery_start,
        )
        assert logged_in is not None, f"requests never finished: {login_statuses}"
        assert all(status < 500 for status in login_statuses + todo_statuses), server.log()
        assert "unhandled error" not in server.log()


def test_huge_headers_are_refused_and_the_service_keeps_serving(
    database: TempPostgres, tmp_path: Path
) -> None:
    with gunicorn(_env(database, tmp_path), tmp_path, workers=WORKERS) as server:
        account = _sign_up(server)
        big = b"X-Big: " + b"a" * HUGE_HEADER_BYTES + b"\r\n"
        many = b"".join(b"X-Many-%d: %s\r\n" % (i, b"v" * 100) for i in range(MANY_HEADERS))
        requests = {
            "one 100 KB header": big,
            f"{MANY_HEADERS} headers": many,
        }
        tally = Tally()
        answers: dict[str, int | None] = {}
        for name, headers in requests.items():
            status = _exchange(
                server,
                b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + headers
                + b"Connection: close\r\n\r\n",
            )
            answers[name] = status
            tally.add(status)

        recovery_start = time.monotonic()
        _assert_serving(server, account)
        _assert_pool_idle(database, WORKERS * (POOL_SIZE + MAX_OVERFLOW))
        tally.report(
            "huge headers",
            answers={name: status or "closed" for name, status in answers.items()},
            recovery_s=time.monotonic() - recovery_start,
        )
        for name, status in answers.items():
            assert status is None or 400 <= status < 500, f"{name}: answered {status}"


# --- 3. a pool too small for the load ------------------------------------------------------


def test_an_exhausted_pool_answers_503_and_recovers(database: TempPostgres, tmp_path: Path) -> None:
    # No lock timeout: the pool is exhausted by a write waiting on a row lock longer than the
    # pool timeout, which LOCK_TIMEOUT_MS (1 s) would otherwise cut short.
    env = _env(
        database, tmp_path,
        DB_POOL_SIZE="1", DB_MAX_OVERFLOW="0", DB_POOL_TIMEOUT="1", LOCK_TIMEOUT_MS="0",
    )  # fmt: skip
    with gunicorn(env, tmp_path, workers=1) as server:
        account = _sign_up(server)
        with httpx.Client(base_url=server.base_url, headers=account.headers, timeout=10) as client:
            created = client.post("/api/v1/todos", json={"title": "contended"})
            assert created.status_code == 201, created.text
        path = f"/api/v1/todos/{created.json()['id']}"
        writes = 8
        barrier = threading.Barrier(writes)

        def attempt(n: int) -> tuple[int | None, str | None, float, httpx.Headers | None]:
            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                barrier.wait(timeout=10)
                started = time.monotonic()
                try:
                    response = client.patch(
                        path, json={"title": f"write {n}"}, headers=account.headers
                    )
                except httpx.TransportError as exc:
                    return None, type(exc).__name__, time.monotonic() - started, None
                return response.status_code, None, time.monotonic() - started, response.headers

        # Someone else holds the row: the first write waits for it on the pool's only
        # connection, and every other write waits for that connection past the pool timeout.
        locker = create_engine(database.url, connect_args={"application_name": "todo-faults"})
        burst_start = time.monotonic()
        with locker.connect() as held, ThreadPoolExecutor(writes) as pool:
            held.execute(
                text("SELECT id FROM todos WHERE id = :id FOR UPDATE"),
                {"id": uuid.UUID(created.json()["id"])},
            )
            futures = [pool.submit(attempt, n) for n in range(writes)]
            time.sleep(2.5)  # well past the one-second pool timeout
            held.rollback()
            results = [future.result() for future in futures]
        burst = time.monotonic() - burst_start
        locker.dispose()

        tally = Tally()
        for status, error, _, _ in results:
            tally.add(status, error)

        recovery_start = time.monotonic()
        _assert_serving(server, account)
        _assert_pool_idle(database, 1 * (1 + 0))
        tally.report(
            "pool of one, eight writes to a locked row",
            burst_s=burst,
            slowest_answer_s=max(seconds for _, _, seconds, _ in results),
            recovery_s=time.monotonic() - recovery_start,
        )

        assert not tally.errors, tally.errors
        assert set(tally.statuses) <= {200, 503}, tally.statuses
        assert all(seconds < 20 for _, _, seconds, _ in results)
        assert tally.unavailable >= 1, "the pool was never exhausted: the test proves nothing"
        assert tally.ok >= 1
        for status, _, _, headers in results:
            if status == 503:
                assert headers is not None
                assert headers.get("retry-after") == "1"


def test_logins_hold_no_connection_through_bcrypt(database: TempPostgres, tmp_path: Path) -> None:
    env = _env(
        database,
        tmp_path,
        BCRYPT_ROUNDS="12",
        DB_POOL_SIZE="1",
        DB_MAX_OVERFLOW="0",
        DB_POOL_TIMEOUT="1",
    )
    with gunicorn(env, tmp_path, workers=1) as server:
        account = _sign_up(server)
        # Ten logins at once take seconds of bcrypt on one worker; had each held the single
        # connection through its check, most would time out waiting for the pool (503).
        emails = [account.email] * 7 + [f"nobody-{i}@example.com" for i in range(3)]
        barrier = threading.Barrier(len(emails))

        def attempt(email: str) -> tuple[int | None, str | None]:
            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                barrier.wait(timeout=10)
                try:
                    response = client.post(
                        "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
                    )
                except httpx.TransportError as exc:
                    return None, type(exc).__name__
                return response.status_code, None

        burst_start = time.monotonic()
        with ThreadPoolExecutor(len(emails)) as pool:
            results = list(pool.map(attempt, emails))
        tally = Tally()
        for status, error in results:
            tally.add(status, error)
        tally.report("pool of one, ten concurrent logins", burst_s=time.monotonic() - burst_start)

        assert tally.statuses == Counter({200: 7, 401: 3}), tally.statuses
        assert not tally.errors, tally.errors
        _assert_pool_idle(database, 1)
