"""What one request costs the worker, in process: CPU time and Python function calls.

`make bench` measures throughput through the real server, but this machine's speed drifts by
tens of percent between minutes. This drives the ASGI app directly (no server, no network,
real PostgreSQL), so it measures only the app's own work per request: the call count is exact
and repeatable, which makes it the tool for comparing two versions of the code, or of a
dependency, within seconds. It is not a throughput figure. Beside it, the CPU the database's
backends spent on the same requests (when the server runs on this machine): work moved into
SQL leaves the app's figure but not the machine.

    .venv/bin/python bench/cost.py                 # every scenario
    .venv/bin/python bench/cost.py get health      # some
    PROFILE_TOP=30 .venv/bin/python bench/cost.py get    # plus the costliest functions
    PROFILE_GROUP=1 ...                               # plus the cost per package

PostgreSQL: BENCH_DATABASE_URL (a server where databases may be created), else the local one;
the run creates its own database and drops it afterwards.
"""

import asyncio
import cProfile
import io
import itertools
import json
import logging
import os
import pstats
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Metrics as under gunicorn (gunicorn_conf.py): samples written to per-process files.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="todo-cost-metrics-")

from app.config import Settings  # noqa: E402
from app.logs import configure_logging  # noqa: E402
from app.main import create_app  # noqa: E402

ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TIMED, PROFILED = int(os.environ.get("PROFILE_N", "1000")), 200
FEED_PAGE = 100
PASSWORD = "correct horse 123"  # noqa: S105 - a throwaway account, database

Call = Callable[[], Awaitable[tuple[int, bytes]]]
# The status each scenario must be answered with: a run with any other fails (exit 1), as an
# error answered cheaply would make its figures look good.
EXPECTED = {"create": 201}


class Client:
    """Calls the ASGI app the way uvicorn does, one request at a time."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        raw = [(b"host", b"bench")] + [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        if body:
            raw.append((b"content-length", str(len(body)).encode()))
        path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": raw,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        messages: list[dict[str, Any]] = []
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client never disconnects
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await self.app(scope, receive, send)
        return messages[0]["status"], b"".join(m.get("body", b"") for m in messages[1:])

    async def json(
        self, method: str, path: str, payload: object, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        return await self.request(
            method,
            path,
            json.dumps(payload).encode(),
            headers | {"content-type": "application/json"},
        )


async def scenarios(client: Client) -> dict[str, Call]:
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    status, body = await client.json(
        "POST", "/api/v1/auth/register", {"email": email, "password": PASSWORD}, {}
    )
    assert status == 201, body
    form = f"username={email.replace('@', '%40')}&password={PASSWORD.replace(' ', '+')}"
    form_type = {"content-type": "application/x-www-form-urlencoded"}
    status, body = await client.request("POST", "/api/v1/auth/token", form.encode(), form_type)
    assert status == 200, body
    auth = {"authorization": "Bearer " + json.loads(body)["access_token"]}
    # More than a feed page: "changes" reads a full page of 100, as `make bench` does.
    ids = []
    for n in range(FEED_PAGE + 20):
        status, body = await client.json("POST", "/api/v1/todos", {"title": f"todo {n}"}, auth)
        assert status == 201, body
        ids.append(json.loads(body)["id"])
    todo, unchanged = ids[-1], ids[0]
    # Every update writes: a title never sent before. update_noop is the PATCH that changes
    # nothing (the no-write path), on a todo of its own that no other scenario touches.
    counter = itertools.count()
    return {
        "health": lambda: client.request("GET", "/health"),
        "get": lambda: client.request("GET", f"/api/v1/todos/{todo}", headers=auth),
        "list": lambda: client.request("GET", "/api/v1/todos?limit=20", headers=auth),
        "create": lambda: client.json("POST", "/api/v1/todos", {"title": "another"}, auth),
        "update": lambda: client.json(
            "PATCH", f"/api/v1/todos/{todo}", {"title": f"updated {next(counter)}"}, auth
        ),
        "update_noop": lambda: client.json(
            "PATCH", f"/api/v1/todos/{unchanged}", {"completed": False}, auth
        ),
        "changes": lambda: client.request(
            "GET", f"/api/v1/changes?limit={FEED_PAGE}", headers=auth
        ),
    }


def by_package(stats: pstats.Stats) -> list[tuple[str, float, float]]:
    totals: dict[str, list[float]] = {}
    for (filename, _line, _name), (_cc, calls, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "site-packages/" in filename:
            key = filename.split("site-packages/")[1].split("/")[0]
        elif str(ROOT) in filename:
            key = filename.split(str(ROOT) + "/")[1]
        elif filename.startswith("~"):
            key = "builtins"
        else:
            key = "stdlib " + Path(filename).name
        entry = totals.setdefault(key, [0.0, 0.0])
        entry[0] += calls / PROFILED
        entry[1] += own
    everything = sum(own for _calls, own in totals.values()) or 1
    rows = [(key, calls, 100 * own / everything) for key, (calls, own) in totals.items()]
    return sorted(rows, key=lambda row: -row[2])


def database_cpu(admin: Engine, database: str) -> Callable[[], float | None]:
    """CPU seconds the PostgreSQL backends serving the database have used so far, read from
    /proc (None when the server is not a process of this machine). The app's CPU alone would
    flatter a change that moves work into SQL: `make bench` runs both on the same cores."""

    def used() -> float | None:
        with admin.connect() as connection:
            query = text("SELECT pid FROM pg_stat_activity WHERE datname = :name")
            pids = connection.execute(query, {"name": database}).scalars().all()
        ticks = 0
        for pid in pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:  # another machine's (or container's) process, or gone
                return None
            command, fields = stat.split(" (", 1)[1].rsplit(") ", 1)
            if not command.startswith("postgres"):
                return None
            ticks += sum(int(field) for field in fields.split()[11:13])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    return used


def _check(name: str, statuses: Counter[int], unexpected: list[str]) -> None:
    print(f"{'':12} statuses {dict(statuses)}")
    if set(statuses) != {EXPECTED.get(name, 200)}:
        unexpected.append(f"{name}: {dict(statuses)}")


async def measure(app: Any, names: list[str], server_cpu: Callable[[], float | None]) -> None:
    client = Client(app)
    calls = await scenarios(client)
    unexpected: list[str] = []
    print(f"{'scenario':12} {'CPU µs/request':>15} {'database µs':>12} {'calls/request':>14}")
    for name in names or list(calls):
        # Each answer's status counted inline (no wrapper: the profile counts calls).
        statuses: Counter[int] = Counter()
        call = calls[name]
        for _ in range(PROFILED):  # warm: caches, statement cache, connection pool
            statuses[(await call())[0]] += 1
        started, server_started = time.process_time(), server_cpu()
        for _ in range(TIMED):
            statuses[(await call())[0]] += 1
        cpu = (time.process_time() - started) / max(TIMED, 1) * 1e6
        server_now = server_cpu()
        server = (
            "-"
            if server_started is None or server_now is None
            else f"{(server_now - server_started) / max(TIMED, 1) * 1e6:.0f}"
        )
        if os.environ.get("PROFILE_CALLS") == "0":  # e.g. under valgrind, which counts itself
            print(f"{name:12} {cpu:15.0f} {server:>12}")
            _check(name, statuses, unexpected)
            continue
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(PROFILED):
            statuses[(await call())[0]] += 1
        profile.disable()
        stats = pstats.Stats(profile, stream=io.StringIO())
        print(f"{name:12} {cpu:15.0f} {server:>12} {stats.total_calls / PROFILED:14.0f}")  # type: ignore[attr-defined]
        _check(name, statuses, unexpected)
        if os.environ.get("PROFILE_DUMP"):  # for pstats, snakeviz, ...
            stats.dump_stats(f"{os.environ['PROFILE_DUMP']}.{name}")
        if os.environ.get("PROFILE_GROUP"):
            for key, n, share in by_package(stats)[:20]:
                print(f"    {key:48} {n:6.0f} calls {share:5.1f}% own time")
        if os.environ.get("PROFILE_TOP"):
            stats.stream = sys.stdout  # type: ignore[attr-defined]
            stats.sort_stats("tottime").print_stats(int(os.environ["PROFILE_TOP"]))
    if unexpected:
        raise SystemExit(
            "UNEXPECTED STATUSES, these figures measure errors:\n  " + "\n  ".join(unexpected)
        )


async def serve(app: Any, names: list[str], server_cpu: Callable[[], float | None]) -> None:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan = asyncio.create_task(app({"type": "lifespan", "state": {}}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started
    try:
        await measure(app, names, server_cpu)
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await lifespan


def main() -> None:
    name = f"todo_profile_{uuid.uuid4().hex[:8]}"
    admin_url = make_url(ADMIN_URL).set(drivername="postgresql+psycopg2")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        settings = Settings(
            _env_file=None,
            database_url=url,
            secret_key="cost-benchmark-key-" + "p" * 64,
            bcrypt_rounds=4,
            log_format="json",
        )
        # As in production: JSON lines to a stream (here one that discards them).
        configure_logging("INFO", "json")
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the run
        server_cpu = database_cpu(admin, name)
        asyncio.run(serve(create_app(settings), sys.argv[1:], server_cpu))
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
