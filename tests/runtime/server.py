"""Start the real thing (gunicorn with uvicorn workers) in a subprocess, on a free port."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx

from app.migrations import ROOT
from tests.conftest import TEST_SECRET
from tests.isolation import free_port

# Rate limits no test reaches unless it sets its own: a server may live for the whole session
# (the PgBouncer backend's), and every test client is one address, 127.0.0.1.
UNREACHED_QUOTA = "1000000/minute"


def app_env(database_url: str, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """What every test server runs with: its own database, real bcrypt at the lowest cost."""
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET,
        "BCRYPT_ROUNDS": "4",
        "ENVIRONMENT": "test",
        "MIGRATION_LOCK_PATH": str(tmp_path / "migrate.lock"),
        "RATE_LIMIT_USER": UNREACHED_QUOTA,
        "RATE_LIMIT_ADDRESS": UNREACHED_QUOTA,
        **overrides,
    }


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as a container runtime does; the master's exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def wait_ready(server: Server, timeout: float = 60, path: str = "/health/ready") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}{path}", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout} s:\n{server.log()}")


@contextmanager
def serve(
    command: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
    port: int,
    *,
    cwd: Path = ROOT,
    user: str | None = None,
    inherit_env: bool = True,
    ready: bool = True,
) -> Iterator[Server]:
    """Run `command` (which must bind `port`), wait until it is ready, SIGTERM it afterwards."""
    full_env = {**os.environ, **env} if inherit_env else dict(env)
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments from the tests
            list(command), cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT, user=user
        )
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    try:
        if ready:
            wait_ready(server)
        yield server
    finally:
        if process.poll() is None:
            server.stop()


@contextmanager
def gunicorn(
    env: Mapping[str, str], tmp_path: Path, *, workers: int = 3, ready: bool = True
) -> Iterator[Server]:
    """gunicorn with the project's configuration, as start.sh runs it, from this checkout.
    ready=False: wait only until it answers /health (the database may be unreachable)."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn_conf.py", "app.main:app"]
    settings = {"BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers), **env}
    log = tmp_path / f"gunicorn-{port}.log"
    with serve(command, settings, log, port, ready=ready) as server:
        if not ready:
            wait_ready(server, path="/health")
        yield server
