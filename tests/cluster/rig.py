"""The rig: PostgreSQL, PgBouncer, three replicas of the app and HAProxy, as real processes.

A pod is `./start.sh` with the Deployment's settings (two workers, no migration at startup,
through the pooler, its own metrics directory); the migration Job is `python -m app.migrations`
over a direct connection, run once before any replica starts. HAProxy stands in for the
Service: round robin over the replicas that pass /health/ready, and its runtime API takes an
endpoint out (drain, maint) and points it at a new pod (a new port: a new pod has a new
address) as the endpoints controller does.

Two nodes, emulated with CPU affinity. On Kubernetes the replicas run on different nodes (or
at least under CPU limits) and the database on a server of its own: a node's cores are its
own, and what replicas on different nodes share is the database. On one machine they would
share its cores as well, and a login storm on one replica slowed the others' reads by the CPU
it took from them (p50 x1.89, p99 x2.19 on an idle 2-core machine), not through the database.
So the machine's cores are split in two (on 2 cores, one each; on more, two halves, node B
the larger; on 1 core nothing is pinned):

- node A: the replica in the `STORMED` slot (each pod that fills it) and the storm client
  (tests/cluster/storm.py), at nice `NODE_A_NICENESS`, and PostgreSQL and PgBouncer at the
  normal priority. The database has first call on that core, as it would on a server of its
  own; the stormed replica runs on what it leaves.
- node B: everything else: this pytest process (the load client, the latency sampler), the
  other replicas and HAProxy.

Why the database is not on node B: there, the CPU it spent on the storm's logins (+0.17 of
the core) was taken from the very replicas whose latency the storm scenario compares; node B
is busy all the time under the steady load, and their reads went x1.34 to x1.58 (p50, p99),
i.e. they shared a core with the database, not only the database. Two cores cannot give the
database a node of its own; a priority on node A comes closest.

The rig pins this process (every thread, so every child started later inherits node B),
starts the database from a thread pinned to node A for the moment (`forking_on`), and node
A's other processes under `taskset` and `nice`.

Every process runs in a process group of its own and is killed with it at the end, whatever
happened; every file lives under one temporary directory, removed at the end.
"""

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
from prometheus_client.parser import text_string_to_metric_families

from app.migrations import ROOT
from tests.faults.cluster import PostgresCluster
from tests.pgbouncer import PgBouncer, pgbouncer
from tests.redis import Redis, redis_server
from tests.runtime.server import Server, app_env, free_port, wait_ready

WORKERS = 2  # the Deployment's WEB_CONCURRENCY
STORMED = "app3"  # the slot whose pods run on node A, with the login storm's client
# The stormed replica and the storm client yield node A's core to the database sharing it: at
# nice 10 they get about a tenth of it when the database wants it all (CFS weights 110 vs
# 1024), so the database answers as if on a server of its own.
NODE_A_NICENESS = 10
APP_POOL_SIZE = 5  # the Deployment's DB_POOL_SIZE (DB_MAX_OVERFLOW=0)
# The replicas hash at cost 10 (about 56 ms a check on this machine's cores), not the tests'
# usual 4 (about 1 ms), so that a login in the storm is the CPU-bound work it is in production
# (12, about 230 ms) rather than a request like any other; and not 12 itself, which would let
# a two-second burst on the niced core of node A check only a few dozen passwords.
BCRYPT_ROUNDS = 10
REPLICAS = 3
RIG_QUOTA = 1_000_000  # requests a minute per user and per address: counted, never refused
# Enough server connections for every replica's pool (3 x 2 x 5): a replica under a login
# storm must not make the others queue for one.
SERVER_POOL_SIZE = REPLICAS * WORKERS * APP_POOL_SIZE
# PgBouncer waits server_login_retry (15 s by default) after a failed connection to the server
# before it tries again, refusing clients meanwhile: with its default the replicas were ready
# again 12.9 s after the database was back; with half a second, 0.3 s.
PGBOUNCER_SETTINGS = {"server_login_retry": "0.5"}
BACKEND = "replicas"
CHECK = "inter 200ms fall 2 rise 2"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 40.0  # GRACEFUL_TIMEOUT (30) and a margin
HAPROXY_TIMEOUT = 10.0
API_PREFIX = "/api/v1"
# HAProxy's own 503 (no replica ready) in the contract's words.
NO_REPLICA_503 = (
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: application/json\r\n"
    "Cache-Control: no-store\r\n"
    "Connection: close\r\n"
    "\r\n"
    '{"detail":"No replica is ready to serve this request"}\n'
)


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/bin/haproxy") if os.path.exists(p)), None
    )


LOG_PREFIX = "request"


@dataclass(frozen=True)
class Nodes:
    """The machine's cores as two nodes (see the module's docstring)."""

    a: frozenset[int]  # the stormed replica and the storm client (niced), the database
    b: frozenset[int]  # the other replicas, HAProxy, the load client

    @classmethod
    def split(cls, cores: Iterable[int]) -> "Nodes | None":
        """Two halves of `cores` (the larger one is node B); None for a single core, which
        cannot be split (the test then runs as before, sharing it)."""
        ordered = sorted(cores)
        if len(ordered) < 2:
            return None
        half = len(ordered) // 2
        return cls(frozenset(ordered[:half]), frozenset(ordered[half:]))

    def describe(self) -> str:
        return (
            f"node A: cores {_cores(self.a)} ({STORMED} and storm client at nice "
            f"{NODE_A_NICENESS}, PostgreSQL, PgBouncer); node B: cores {_cores(self.b)}"
        )


def _cores(cores: Iterable[int]) -> str:
    return ",".join(str(c) for c in sorted(cores))


def pin_this_process(cores: Iterable[int]) -> None:
    """Every thread of this process onto `cores`. sched_setaffinity(0) would pin only the
    calling thread; a child inherits the affinity of the thread that starts it."""
    for task in Path("/proc/self/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), set(cores))
        except ProcessLookupError:
            continue  # a thread that ended meanwhile


@contextmanager
def forking_on(cores: Iterable[int] | None) -> Iterator[None]:
    """The calling thread on `cores` for the moment (None: as it is): the processes it starts
    meanwhile, and everything they fork, run there. pg_ctl's postmaster forks every backend."""
    if cores is None:
        yield
        return
    before = os.sched_getaffinity(0)  # 0: the calling thread only
    os.sched_setaffinity(0, set(cores))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def on_cores(cores: Iterable[int] | None, command: Sequence[str], niceness: int = 0) -> list[str]:
    """`command`, to run on `cores` (None: where this process runs) at `niceness`, from its
    first instruction. `taskset` pins itself, then execs the command: nothing it forks
    (gunicorn's workers) escapes. Pinning the pid after Popen would race the fork."""
    if niceness:
        command = ["nice", "-n", str(niceness), *command]
    if cores is None:
        return list(command)
    taskset = shutil.which("taskset")
    if taskset is not None:
        return [taskset, "--cpu-list", _cores(cores), *command]
    # No util-linux: the same in Python.
    pin = (
        f"import os, sys; os.sched_setaffinity(0, {set(cores)!r}); "
        "os.execvp(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", pin, *command]


@dataclass(frozen=True)
class LogEntry:
    """What HAProxy logged about one request."""

    server: str  # name:port, as X-Served-By says it
    status: int  # -1: no response from the server
    termination: str  # %ts: who ended the session, at which stage ("--": normally)


@dataclass
class Replica:
    """One pod: gunicorn from start.sh, on its own port, in its own process group."""

    name: str  # the HAProxy server (the Service endpoint slot) it fills
    port: int
    metrics_port: int  # METRICS_PORT: gunicorn's master serves /metrics there
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_dir: Path
    started: float
    stopped: float | None = None
    killed: bool = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def key(self) -> str:
        """How the load balancer's X-Served-By header names this replica."""
        return f"{self.name}:{self.port}"

    def server(self) -> Server:
        return Server(self.process, self.base_url, self.log_path)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM to gunicorn's master, as the kubelet does after preStop; its exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.stopped = time.monotonic()
            self.kill_group()  # anything the master left behind

    def kill_group(self) -> None:
        """SIGKILL to the whole process group: master and workers at once (a node lost).
        Returns once the group is gone (bounded): dying takes a moment on a loaded machine."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.process.wait(timeout=10)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and _group_alive(self.process.pid):
            time.sleep(0.005)
        if self.stopped is None:
            self.stopped = time.monotonic()

    def cpu_seconds(self) -> float:
        """CPU time (user + system) its live processes have used so far."""
        ticks = sum(int(fields[11]) + int(fields[12]) for fields in _group_stats(self.process.pid))
        return ticks / os.sysconf("SC_CLK_TCK")

    def api_requests(self) -> int:
        """Requests under /api/v1 this replica answered, from its workers' metric files.

        Read from the files, not from /metrics: a killed replica's files are still on this
        disk (a pod's emptyDir would be gone), and scraping /metrics would not count itself.
        """
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.metrics_dir))  # type: ignore[no-untyped-call]
        return _api_requests(generate_latest(registry).decode())

    def scraped_api_requests(self) -> int:
        """The same count, as its METRICS_PORT serves it (the replica must be up)."""
        response = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10)
        response.raise_for_status()
        return _api_requests(response.text)


def _group_stats(pgid: int) -> list[list[str]]:
    """/proc/<pid>/stat's fields after the command name, then the pid, for every process of
    the group."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            found.append([*fields, entry.name])
    return found


def _group_alive(pgid: int) -> bool:
    """Any thread of the group's processes still running. The process's own state is not
    enough: its main thread is a zombie while its other threads still exit, and its sockets
    close with the last of them."""
    for fields in _group_stats(pgid):
        pid = fields[-1]  # appended by _group_stats
        for task in Path(f"/proc/{pid}/task").glob("*/stat"):
            try:
                if task.read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    return True
            except OSError:
                continue
    return False


def _api_requests(exposition: str) -> int:
    total = 0.0
    for family in text_string_to_metric_families(exposition):
        if family.name != "http_requests":  # the parser drops the counter's _total
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels["route"].startswith(API_PREFIX):
                total += sample.value
    return int(total)


class HAProxy:
    """HAProxy in front of the replicas, and its runtime API (the admin socket)."""

    def __init__(self, binary: str, directory: Path, replicas: list[Replica]) -> None:
        self.directory = directory
        self.port = free_port()
        self.socket_path = directory / "admin.sock"
        (directory / "503.http").write_text(NO_REPLICA_503)
        servers = "\n".join(
            f"    server {r.name} 127.0.0.1:{r.port} check {CHECK}" for r in replicas
        )
        (directory / "haproxy.cfg").write_text(
            f"""\
global
    log stdout format raw local0
    stats socket {self.socket_path} mode 600 level admin
    stats timeout 10s
    maxconn 2000

defaults
    mode http
    log global
    # One line per request: the client's request id, the replica, the status, and how the
    # session ended (%ts: "SH" = the server aborted it before its headers, "--" = normal).
    log-format "{LOG_PREFIX} %[capture.req.hdr(0)] %s:%sp %ST %ts"
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 30s
    timeout check 1s
    # A connection refused (a replica gone, not yet marked down) is retried on another one.
    retries 3
    option redispatch 1
    # A new connection to the replica for every request (the client keeps its own alive).
    # With kept-alive server connections, a replica that dies leaves dead idle connections
    # that HAProxy reuses until its checks mark it down, and it closes the client's
    # connection without an answer for each: every client session that comes by fails once,
    # not only the requests the replica had under way (seen: all six actors, after it died).
    option http-server-close
    errorfile 503 {directory}/503.http

frontend api
    bind 127.0.0.1:{self.port}
    capture request header X-Request-ID len 64
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    option httpchk GET /health/ready
    http-check expect status 200
    # Which replica answered (or was tried): the load client counts per replica.
    http-after-response set-header X-Served-By "%s:%sp"
{servers}
"""
        )
        self.log_path = directory / "haproxy.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - fixed arguments
                [binary, "-db", "-f", str(directory / "haproxy.cfg")],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_socket()
        except BaseException:
            self.stop()
            raise

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_socket(self) -> None:
        deadline = time.monotonic() + HAPROXY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited: {self.log_path.read_text(errors='replace')}")
            if self.socket_path.exists():
                try:
                    self.command("show info")
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("haproxy's admin socket did not come up")

    def command(self, line: str) -> str:
        """One runtime API command; its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def set_state(self, server: str, state: str) -> None:
        answer = self.command(f"set server {BACKEND}/{server} state {state}")
        assert not answer.strip(), f"set server {server} state {state}: {answer}"

    def set_port(self, server: str, port: int) -> None:
        answer = self.command(f"set server {BACKEND}/{server} addr 127.0.0.1 port {port}")
        assert "changed" in answer or not answer.strip(), f"set server {server} addr: {answer}"

    def _stats(self) -> dict[str, dict[str, str]]:
        answer = self.command("show stat").lstrip("# ")
        return {
            row["svname"]: row
            for row in csv.DictReader(io.StringIO(answer))
            if row["pxname"] == BACKEND and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def status(self) -> dict[str, str]:
        """Each server's status as HAProxy sees it: UP, DOWN, DRAIN, MAINT, UP 1/2, ..."""
        return {name: row["status"] for name, row in self._stats().items()}

    def log_entries(self) -> dict[str, LogEntry]:
        """The log's line for each request, by the request id the client sent."""
        entries = {}
        for line in self.log_path.read_text(errors="replace").splitlines():
            fields = line.split()
            if len(fields) == 5 and fields[0] == LOG_PREFIX:
                entries[fields[1]] = LogEntry(fields[2], int(fields[3]), fields[4])
        return entries

    def current_sessions(self, server: str) -> int:
        """Requests HAProxy has on that server right now (its scur)."""
        return int(self._stats()[server]["scur"])

    def errors(self) -> Counter[str]:
        """Per server, HAProxy's counts of transfers it aborted and of responses that failed
        (srv_abrt + eresp) since HAProxy started. Not one per failed request (a request may
        count in both, a connection closed on a reused one in neither): where, not how many."""
        return Counter(
            {name: int(row["srv_abrt"]) + int(row["eresp"]) for name, row in self._stats().items()}
        )

    def wait_status(self, server: str, wanted: str, timeout: float = HAPROXY_TIMEOUT) -> float:
        """Seconds until HAProxy reports `server` as `wanted` (UP, DOWN, ...)."""
        started = time.monotonic()
        while True:
            status = self.status().get(server, "")
            if status == wanted:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{server} is {status!r}, not {wanted} after {timeout} s")
            time.sleep(0.02)

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.process.wait(timeout=10)


@dataclass
class Rig:
    postgres: PostgresCluster
    direct_url: str  # to PostgreSQL itself: the migration Job and the tests' own checks
    bouncer: PgBouncer
    directory: Path
    replicas: dict[str, Replica] = field(default_factory=dict)  # the current one per slot
    retired: list[Replica] = field(default_factory=list)
    haproxy: HAProxy | None = None
    nodes: Nodes | None = None  # None: one core, nothing pinned
    redis: Redis | None = None  # the rate limits' counts, shared by every replica

    @property
    def node_a(self) -> frozenset[int] | None:
        """The cores of the stormed replica's node (None: not pinned)."""
        return None if self.nodes is None else self.nodes.a

    def on_node_a(self, command: Sequence[str]) -> list[str]:
        """`command` as node A runs what is not the database: pinned there, yielding to it.
        Unpinned (one core), it runs as everything else does."""
        if self.nodes is None:
            return list(command)
        return on_cores(self.nodes.a, command, NODE_A_NICENESS)

    def start_database(self) -> None:
        """Start PostgreSQL on node A (also after a stop)."""
        with forking_on(self.node_a):
            self.postgres.start()

    @property
    def pooled_url(self) -> str:
        """Through PgBouncer: what every pod's DATABASE_URL is."""
        return self.bouncer.url(self.direct_url)

    @property
    def lb(self) -> HAProxy:
        assert self.haproxy is not None
        return self.haproxy

    def all_replicas(self) -> list[Replica]:
        return [*self.retired, *self.replicas.values()]

    def migrate(self) -> None:
        """The Kubernetes Job: `python -m app.migrations`, directly to PostgreSQL."""
        env = {
            **os.environ,
            **app_env(
                self.pooled_url,
                self.directory,
                DB_POOLER="transaction",
                MIGRATION_DATABASE_URL=self.direct_url,
            ),
        }
        result = subprocess.run(
            [sys.executable, "-m", "app.migrations"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"migration Job failed:\n{result.stdout}{result.stderr}"

    def spawn(self, name: str) -> Replica:
        """Start a pod for the slot `name` on a new port (not ready yet)."""
        port, metrics_port = free_port(), free_port()
        metrics = self.directory / f"metrics-{name}-{port}"
        env = {
            **os.environ,
            **app_env(
                self.pooled_url,
                self.directory,
                HOST="127.0.0.1",
                PORT=str(port),
                WEB_CONCURRENCY=str(WORKERS),
                PROMETHEUS_MULTIPROC_DIR=str(metrics),
                METRICS_PORT=str(metrics_port),
                MIGRATE_ON_STARTUP="false",
                DB_POOLER="transaction",
                # LISTEN needs a connection of its own: PgBouncer in transaction mode hands
                # the one that ran it to other clients, so waiting feed requests would only
                # recheck every 2 s (app.changes.notifications), as the Deployment's
                # DATABASE_LISTEN_URL avoids.
                DATABASE_LISTEN_URL=self.direct_url,
                DB_POOL_SIZE=str(APP_POOL_SIZE),
                DB_MAX_OVERFLOW="0",
                DB_CONNECT_TIMEOUT="2",
                GRACEFUL_TIMEOUT="30",
                BCRYPT_ROUNDS=str(BCRYPT_ROUNDS),
                **self.rate_limits(),
            ),
        }
        env.pop("BIND", None)
        log_path = self.directory / f"{name}-{port}.log"
        command = [str(ROOT / "start.sh")]
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - the project's own start script
                self.on_node_a(command) if name == STORMED else command,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a process group of its own: killed as one
            )
        replica = Replica(name, port, metrics_port, process, log_path, metrics, time.monotonic())
        if name in self.replicas:
            self.retired.append(self.replicas[name])
        self.replicas[name] = replica
        return replica

    def rate_limits(self) -> dict[str, str]:
        """Counted in the rig's one Redis, as on Kubernetes, at quotas no scenario reaches:
        every client of the rig is 127.0.0.1 (the login storm alone sends hundreds a minute)."""
        assert self.redis is not None
        return {
            "RATE_LIMIT_STORAGE": self.redis.url,
            "RATE_LIMIT_USER": f"{RIG_QUOTA}/minute",
            "RATE_LIMIT_ADDRESS": f"{RIG_QUOTA}/minute",
        }

    def wait_replica_ready(self, replica: Replica) -> None:
        wait_ready(replica.server(), timeout=START_TIMEOUT)
        # Ready means one worker answers; both must be serving before it takes traffic.
        deadline = time.monotonic() + START_TIMEOUT
        while replica.log().count("Application startup complete.") < WORKERS:
            assert time.monotonic() < deadline, f"workers did not start:\n{replica.log()}"
            time.sleep(0.1)

    def replace(self, name: str) -> Replica:
        """A new pod in the slot `name`: started, ready, then its endpoint pointed at it and
        enabled; returns once HAProxy's own health checks have it UP."""
        replica = self.spawn(name)
        self.wait_replica_ready(replica)
        self.lb.set_state(name, "maint")
        self.lb.set_port(name, replica.port)
        self.lb.set_state(name, "ready")
        self.lb.wait_status(name, "UP")
        return replica

    def close(self) -> None:
        if self.haproxy is not None:
            self.haproxy.stop()
        for replica in self.all_replicas():
            if replica.alive():
                replica.kill_group()


@contextmanager
def running_rig(haproxy: str) -> Iterator[Rig]:
    """The whole rig, up and ready; torn down (every process group killed) afterwards."""
    with ExitStack() as stack:
        # Node B from here on: HAProxy, the replicas and the load client inherit it. Put
        # back last, once every process is gone.
        nodes = Nodes.split(os.sched_getaffinity(0))
        if nodes is not None:
            stack.callback(pin_this_process, os.sched_getaffinity(0))
            pin_this_process(nodes.b)
        node_a = None if nodes is None else nodes.a
        postgres = PostgresCluster.create()
        stack.callback(postgres.destroy)
        directory = Path(postgres.base) / "rig"
        directory.mkdir()
        with forking_on(node_a):  # the database's node (see the module's docstring)
            postgres.start()
        direct_url = postgres.url(postgres.create_database("cluster"))
        with forking_on(node_a):
            bouncer = stack.enter_context(
                pgbouncer(
                    directory,
                    direct_url,
                    pool_size=SERVER_POOL_SIZE,
                    settings=PGBOUNCER_SETTINGS,
                )
            )
        # On node B with the replicas it serves (this process's cores), not on node A: there
        # it would take CPU from the database and the stormed replica, which node A measures.
        redis = stack.enter_context(redis_server(directory))
        rig = Rig(postgres, direct_url, bouncer, directory, nodes=nodes, redis=redis)
        stack.callback(rig.close)
        rig.migrate()
        started = [rig.spawn(f"app{i}") for i in range(1, REPLICAS + 1)]
        for replica in started:
            rig.wait_replica_ready(replica)
        rig.haproxy = HAProxy(haproxy, directory, started)
        for replica in started:
            rig.lb.wait_status(replica.name, "UP")
        yield rig
