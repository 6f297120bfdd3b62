"""A private redis-server (Debian's) on a free port, for the rate-limit tests, the cluster rig
and the benchmark, started the way tests/pgbouncer.py starts PgBouncer.

Nothing persists (no RDB, no AOF): each server starts empty. The tests that break it on purpose
stop it (kill), freeze it (SIGSTOP, a Redis that accepts connections and never answers) and
start it again on the same port.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.isolation import free_port


def redis_binary() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.path.exists(p)),
        None,
    )


def require_redis() -> str:
    """The redis-server executable, or skip (fail in CI) with what to install."""
    found = redis_binary()
    if found:
        return found
    import pytest  # only tests ask for this (bench/ uses the launcher too)

    reason = "redis-server not found (apt-get install -y redis-server; make test installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true requires the Redis tests: {reason}")
    pytest.skip(f"SKIPPING REDIS TESTS: {reason}")


@dataclass
class Redis:
    binary: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        quiet = subprocess.DEVNULL
        self.process = subprocess.Popen(command, stdout=quiet, stderr=quiet)  # noqa: S603
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if self.command("PING") == "+PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING within 10 s")

    def kill(self) -> None:
        """Gone at once, as a crashed or unreachable Redis is."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen one must be able to die
            self.process.kill()
            self.process.wait()

    def freeze(self) -> None:
        """Accepts connections (the kernel does) and answers nothing: a hanging Redis."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def command(self, *words: str) -> str | None:
        """One command over RESP, its reply's first line; None when nothing answers."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                request = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
                sock.sendall(request.encode())
                return sock.recv(65536).decode().split("\r\n", 1)[0]
        except OSError:
            return None

    def flush(self) -> None:
        assert self.command("FLUSHALL") == "+OK"


@contextmanager
def redis_server(tmp_path: Path) -> Iterator[Redis]:
    directory = tmp_path / f"redis-{free_port()}"
    directory.mkdir()
    server = Redis(require_redis(), free_port(), directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()
