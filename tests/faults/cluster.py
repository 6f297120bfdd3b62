"""A throwaway PostgreSQL cluster that a test fully controls: stop it, start it, cut connections.

The shared test server (TEST_DATABASE_URL) must not be stopped or have its backends killed, so
fault tests get a cluster of their own: `initdb` into a temporary directory, trust auth on
127.0.0.1, a free TCP port, the unix socket inside that directory. PostgreSQL refuses to run as
root, so as root every command runs as the `postgres` OS user (`runuser`).
"""

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from tests.isolation import database_name, free_port

POSTGRES_ROOT = Path("/usr/lib/postgresql")
OS_USER = "postgres"
SUPERUSER = "postgres"
ADMIN_APPLICATION_NAME = "todo-faults-admin"
PG_CTL_TIMEOUT = 30

StopMode = Literal["smart", "fast", "immediate"]


class ClusterUnavailable(Exception):
    """This machine cannot run a private PostgreSQL cluster (missing binaries or user)."""


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def find_bin_dir() -> Path:
    """The newest PostgreSQL's bin directory, with initdb, pg_ctl and postgres in it."""
    needed = ("initdb", "pg_ctl", "postgres")
    candidates = [p / "bin" for p in POSTGRES_ROOT.glob("*") if _version_key(p.name)]
    candidates = [d for d in candidates if all((d / name).is_file() for name in needed)]
    if candidates:
        return max(candidates, key=lambda d: _version_key(d.parent.name))
    on_path = [shutil.which(name) for name in needed]
    if all(on_path) and len({Path(str(p)).parent for p in on_path}) == 1:
        return Path(str(on_path[0])).parent
    raise ClusterUnavailable(f"no initdb/pg_ctl/postgres under {POSTGRES_ROOT}/*/bin or on PATH")


class PostgresCluster:
    """One PostgreSQL instance in `base`; create it with `PostgresCluster.create()`."""

    def __init__(self, bin_dir: Path, base: Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.base = base
        self.port = port
        self.data_dir = base / "data"
        self.socket_dir = base / "socket"
        self.log_path = base / "postgres.log"

    @classmethod
    def create(cls, settings: Mapping[str, str] | None = None) -> "PostgresCluster":
        """initdb a new cluster in a fresh temporary directory (not started yet); settings:
        more postgresql.conf lines, as PostgreSQL spells them."""
        bin_dir = find_bin_dir()
        as_root = os.geteuid() == 0
        if as_root:
            if shutil.which("runuser") is None:
                raise ClusterUnavailable("running as root and `runuser` is missing")
            try:
                owner = pwd.getpwnam(OS_USER)
            except KeyError:
                raise ClusterUnavailable(f"running as root and no {OS_USER!r} OS user") from None
        # Under /tmp (not pytest's 0700 root-owned tmp dirs): the postgres user must reach it.
        base = Path(tempfile.mkdtemp(prefix="todo-faults-pg-"))
        cluster = cls(bin_dir, base, free_port())
        try:
            cluster.socket_dir.mkdir()
            if as_root:
                for path in (base, cluster.socket_dir):
                    os.chown(path, owner.pw_uid, owner.pw_gid)
            cluster._run(
                "initdb",
                "--pgdata",
                str(cluster.data_dir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            )
            conf_settings = {
                "listen_addresses": "'127.0.0.1'",
                "port": str(cluster.port),
                "unix_socket_directories": f"'{cluster.socket_dir}'",
                # Throwaway data: skip the disk flushes. Commits stay synchronous, so an
                # acknowledged commit is in the WAL even when the cluster is stopped abruptly.
                "fsync": "off",
                "full_page_writes": "off",
                "max_connections": "100",
                "shared_buffers": "32MB",
                **(settings or {}),
            }
            with (cluster.data_dir / "postgresql.conf").open("a") as conf:
                conf.write("\n# tests/faults/cluster.py\n")
                conf.writelines(f"{key} = {value}\n" for key, value in conf_settings.items())
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    # -- running PostgreSQL's programs -----------------------------------------------------

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", OS_USER, "--", *command]
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        result = subprocess.run(  # noqa: S603 - fixed programs, arguments from this module
            command,
            cwd=self.base,  # the postgres user may not be allowed into the caller's cwd
            env=env,
            capture_output=True,
            text=True,
            timeout=PG_CTL_TIMEOUT + 30,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} exited with {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\n--- server log ---\n{self.log_tail()}"
            )
        return result

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        self._run(
            "pg_ctl",
            "--pgdata",
            str(self.data_dir),
            "--log",
            str(self.log_path),
            "--wait",
            "--timeout",
            str(PG_CTL_TIMEOUT),
            "start",
        )

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop and wait until the postmaster is gone (fast: roll back sessions, checkpoint)."""
        self._run(
            "pg_ctl",
            "--pgdata",
            str(self.data_dir),
            "--mode",
            mode,
            "--wait",
            "--timeout",
            str(PG_CTL_TIMEOUT),
            "stop",
        )

    def is_running(self) -> bool:
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        try:
            self._run("pg_ctl", "--pgdata", str(self.data_dir), "status")
        except RuntimeError:
            return False
        return True

    def destroy(self) -> None:
        """Stop it however it can be stopped, and remove every file. Never raises."""
        try:
            if self.is_running():
                self.stop("immediate")
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            self._kill_postmaster()
        shutil.rmtree(self.base, ignore_errors=True)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _kill_postmaster(self) -> None:
        pid = self._postmaster_pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)  # the postmaster this cluster started, by its pid
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)

    # -- stalling every backend mid-statement ------------------------------------------------

    @contextmanager
    def stalled_logging(self) -> Iterator[None]:
        """Every backend that writes a log line stops in that write until the block ends.

        With logging_collector = on, backends write their log lines into a pipe the logger
        process empties (PostgreSQL never drops a line: a writer waits while the pipe is
        full). Here the logger is stopped (SIGSTOP) and the pipe filled up: a backend that
        logs a statement (log_statement) then waits in the middle of it, after its statement
        timeout was armed and before it checks for a cancel, as it would behind a logger that
        cannot keep up. SIGCONT at the end lets the logger drain the pipe."""
        postmaster = self._postmaster_pid()
        logger = next(
            (pid for pid, command in self._children(postmaster) if "logger" in command), None
        )
        if postmaster is None or logger is None:
            raise RuntimeError("stalled_logging needs a running cluster with logging_collector")
        os.kill(logger, signal.SIGSTOP)  # this cluster's logger, by its pid
        try:
            # The postmaster's stderr is the pipe's writing end (it and every backend share it).
            pipe = os.open(f"/proc/{postmaster}/fd/2", os.O_WRONLY | os.O_NONBLOCK)
            try:
                for size in (4096, 64, 1):  # whole pages, then the last bytes of the last one
                    with contextlib.suppress(BlockingIOError):
                        while True:
                            os.write(pipe, b"-" * (size - 1) + b"\n")
            finally:
                os.close(pipe)
            yield
        finally:
            os.kill(logger, signal.SIGCONT)

    @staticmethod
    def _children(parent: int | None) -> list[tuple[int, str]]:
        """(pid, command line) of the parent's child processes."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_text().replace("\0", " ")
            except OSError:
                continue  # exited meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append((int(entry.name), command))
        return found

    # -- SQL ---------------------------------------------------------------------------------

    def url(self, database: str = "postgres", application_name: str | None = None) -> str:
        query = {"application_name": application_name} if application_name else {}
        return URL.create(
            "postgresql+psycopg2",
            username=SUPERUSER,
            host="127.0.0.1",
            port=self.port,
            database=database,
            query=query,
        ).render_as_string(hide_password=False)

    @property
    def admin_url(self) -> str:
        return self.url("postgres", ADMIN_APPLICATION_NAME)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement on the admin database, autocommit, on a connection of its own."""
        engine = create_engine(
            self.admin_url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={"connect_timeout": 3},
        )
        try:
            with engine.connect() as connection:
                result = connection.execute(text(sql), params or {})
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            engine.dispose()

    def create_database(self, role: str = "faults") -> str:
        """A new empty database; its name (tests/isolation.py: TEST_DB_PREFIX, the role)."""
        name = database_name(role)
        self.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def terminate_backends(self, application_name: str) -> int:
        """pg_terminate_backend every connection of that application; how many were killed."""
        rows = self.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = :name AND pid <> pg_backend_pid()",
            {"name": application_name},
        )
        return int(rows[0][0])
