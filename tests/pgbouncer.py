"""A real PgBouncer in transaction mode in front of the local PostgreSQL, on a free port.

Debian's pgbouncer (1.18 here): no prepared-statement support of its own, and a server pool
smaller than the app's, so consecutive transactions of one client really do land on
different server connections.
"""

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.isolation import free_port

# Fewer server connections than one app worker's pool (DB_POOL_SIZE below): shared for real.
SERVER_POOL_SIZE = 3
APP_POOL_SIZE = 5


def pgbouncer_binary() -> str | None:
    """Debian installs it in /usr/sbin, which a non-root PATH often lacks."""
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
    )


def require_pgbouncer() -> str:
    """The pgbouncer executable, or skip (fail in CI) with what to install."""
    found = pgbouncer_binary()
    if found:
        return found
    import pytest  # only tests ask for this (bench/ uses the launcher too)

    reason = "pgbouncer not found (apt-get install -y pgbouncer; make test installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true requires the PgBouncer tests: {reason}")
    pytest.skip(f"SKIPPING PGBOUNCER TESTS: {reason}")


@dataclass
class PgBouncer:
    port: int
    directory: Path

    def url(self, direct_url: str) -> str:
        """direct_url, but through the pooler."""
        url = make_url(direct_url).set(host="127.0.0.1", port=self.port)
        return url.render_as_string(hide_password=False)

    def log(self) -> str:
        return (self.directory / "pgbouncer.log").read_text(errors="replace")


def _config(
    directory: Path,
    port: int,
    upstream_host: str,
    upstream_port: int,
    pool_size: int,
    settings: Mapping[str, str],
) -> str:
    extra = "".join(f"{key} = {value}\n" for key, value in settings.items())
    return f"""\
[databases]
* = host={upstream_host} port={upstream_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory}/userlist.txt
pool_mode = transaction
default_pool_size = {pool_size}
reserve_pool_size = 0
max_client_conn = 1000
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
{extra}"""


@contextmanager
def pgbouncer(
    tmp_path: Path,
    upstream_url: str,
    *,
    binary: str | None = None,
    pool_size: int = SERVER_POOL_SIZE,
    settings: Mapping[str, str] | None = None,
) -> Iterator[PgBouncer]:
    """Start PgBouncer for the server at upstream_url (trust auth, as the local one has);
    settings: more [pgbouncer] options (e.g. server_login_retry), as PgBouncer spells them."""
    binary = binary or require_pgbouncer()
    upstream = make_url(upstream_url)
    directory = tmp_path / f"pgbouncer-{free_port()}"
    directory.mkdir()
    port = free_port()
    (directory / "userlist.txt").write_text(f'"{upstream.username or "postgres"}" ""\n')
    (directory / "pgbouncer.ini").write_text(
        _config(
            directory,
            port,
            upstream.host or "127.0.0.1",
            upstream.port or 5432,
            pool_size,
            settings or {},
        )
    )
    command = [binary, str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root; it drops to this user itself.
        user = "postgres" if _has_user("postgres") else "nobody"
        command[1:1] = ["-u", user]
        shutil.chown(directory, user)
        for path in directory.parents:  # it must reach its directory
            if path == Path("/"):
                break
            path.chmod(path.stat().st_mode | 0o011)
        directory.chmod(0o755)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # noqa: S603
    bouncer = PgBouncer(port, directory)
    try:
        _wait_listening(port, process, bouncer)
        yield bouncer
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _wait_listening(port: int, process: subprocess.Popen[bytes], bouncer: PgBouncer) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = bouncer.log() if (bouncer.directory / "pgbouncer.log").exists() else ""
            raise RuntimeError(f"pgbouncer exited with {process.returncode}:\n{log}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("pgbouncer did not start listening within 10 s")
