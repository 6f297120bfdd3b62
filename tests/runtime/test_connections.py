"""Connections to the real server (gunicorn, the uvicorn worker): the head and the body each have
a deadline, a worker takes a bounded number of connections, the metrics port holds no thread per
connection, and no response says which server software answered (API.md, "Connections")."""

import json
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx2 as httpx

from tests.conftest import TempPostgres
from tests.runtime.server import Server, app_env, free_port, gunicorn

SHORT = "1"  # seconds: HEADER_TIMEOUT and BODY_TIMEOUT, shortened for the test


def _address(server: Server) -> tuple[str, int]:
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _closed_after(sock: socket.socket, limit: float) -> float | None:
    """Seconds until the server closes `sock` (EOF or reset), reading whatever it sends;
    None if it is still open after `limit` seconds."""
    start = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - start < limit:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
    return None


@contextmanager
def _serve(database: TempPostgres, tmp_path: Path, **settings: str) -> Iterator[Server]:
    env = app_env(database.url, tmp_path, **settings)
    with gunicorn(env, tmp_path, workers=1) as server:
        yield server


def test_a_half_sent_head_is_disconnected_after_the_header_timeout(
    database: TempPostgres, tmp_path: Path
) -> None:
    with _serve(database, tmp_path, HEADER_TIMEOUT=SHORT, BODY_TIMEOUT="60") as server:
        with ExitStack() as stack:
            connect = stack.enter_context
            idle = connect(socket.create_connection(_address(server)))
            half = connect(socket.create_connection(_address(server)))
            half.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            # A byte every 0.2 s: a deadline per read would never fire; the head's is total.
            trickle = connect(socket.create_connection(_address(server)))
            trickle.sendall(b"GET /health HTTP/1.1\r\n")
            start = time.monotonic()
            closed = False
            while time.monotonic() - start < 8:
                try:
                    trickle.sendall(b"X")
                except OSError:
                    closed = True
                    break
                time.sleep(0.2)
            assert closed, "a trickled head was still being read after 8 s"
            for sock in (idle, half):
                seconds = _closed_after(sock, 8)
                assert seconds is not None, "still open 8 s after a 1 s header timeout"
            # The worker goes on serving.
            assert httpx.get(f"{server.base_url}/health", timeout=5).status_code == 200
        assert "Traceback" not in server.log()


def test_a_stalled_body_is_disconnected_after_the_body_timeout(
    database: TempPostgres, tmp_path: Path
) -> None:
    with _serve(database, tmp_path, HEADER_TIMEOUT="60", BODY_TIMEOUT=SHORT) as server:
        with socket.create_connection(_address(server)) as sock:
            sock.sendall(
                b"POST /api/v1/auth/register HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"email": "'
            )
            seconds = _closed_after(sock, 8)
            assert seconds is not None, "a body stalled after 11 bytes was still open after 8 s"
        # A body that arrives in time is served as always, on a connection of its own.
        body = {"email": "on-time@example.com", "password": "correct-horse-battery"}
        response = httpx.post(f"{server.base_url}/api/v1/auth/register", json=body, timeout=10)
        assert response.status_code == 201, response.text
        assert "Traceback" not in server.log()


def _get_on(sock: socket.socket, path: str = "/health") -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    sock.settimeout(10)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest


def test_past_max_connections_a_worker_answers_503(database: TempPostgres, tmp_path: Path) -> None:
    cap = 5
    settings = {"MAX_CONNECTIONS": str(cap), "KEEP_ALIVE": "60"}
    with _serve(database, tmp_path, **settings) as server, ExitStack() as stack:
        held = []
        for _ in range(cap):
            sock = stack.enter_context(socket.create_connection(_address(server)))
            # Answered, and kept open (keep-alive): the worker holds this connection.
            assert _get_on(sock).startswith(b"HTTP/1.1 200")
            held.append(sock)
        with socket.create_connection(_address(server)) as extra:
            answer = _get_on(extra)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503"), answer
            assert b"retry-after: 1" in head.lower()
            assert b"connection: close" in head.lower()
            assert isinstance(json.loads(body)["detail"], str)
            assert _closed_after(extra, 5) is not None
        # The held ones are still served; one fewer, and a newcomer is too.
        assert _get_on(held[0]).startswith(b"HTTP/1.1 200")
        held.pop().close()
        # The worker notices the close when its loop next runs: until then a newcomer may
        # still be one too many.
        deadline, answer = time.monotonic() + 10, b""
        while time.monotonic() < deadline and not answer.startswith(b"HTTP/1.1 200"):
            with socket.create_connection(_address(server)) as newcomer:
                answer = _get_on(newcomer)
        assert answer.startswith(b"HTTP/1.1 200"), answer


def test_no_server_header_and_a_date(database: TempPostgres, tmp_path: Path) -> None:
    with _serve(database, tmp_path) as server:
        for path in ("/health", "/api/v1/todos", "/no-such-page"):
            response = httpx.get(f"{server.base_url}{path}", timeout=10)
            assert "server" not in response.headers, (path, response.headers)
            assert "date" in response.headers


def _threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


def test_idle_connections_to_the_metrics_port_hold_no_threads(
    database: TempPostgres, tmp_path: Path
) -> None:
    metrics_port = free_port()
    settings = {"METRICS_PORT": str(metrics_port), "HEADER_TIMEOUT": "3"}
    settings["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")
    with _serve(database, tmp_path, **settings) as server:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        assert httpx.get(url, timeout=10).status_code == 200
        master = server.process.pid
        before = _threads(master)
        with ExitStack() as stack:
            idle = [
                stack.enter_context(socket.create_connection(("127.0.0.1", metrics_port)))
                for _ in range(200)
            ]
            idle[0].sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # and one half a head
            time.sleep(1)  # accepted by now, whatever serves them
            assert _threads(master) <= before + 1, (before, _threads(master))
            # Closed by the server: past the connection cap at once, the rest at the timeout.
            closed = [_closed_after(sock, 10) for sock in idle]
            assert all(seconds is not None for seconds in closed), closed.count(None)
        # Scrapes go on.
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200
        assert "http_requests_total" in response.text
        assert "server" not in response.headers
        assert _threads(master) <= before + 1
        assert "Traceback" not in server.log()
