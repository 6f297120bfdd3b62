"""Tracing (API.md, "Tracing (v1.2)") against a real OTLP receiver (tests/otlp.py): gunicorn
with 2 workers, on PostgreSQL and behind PgBouncer in transaction mode, exporting over the
wire what a collector would decode.

Each request the workload sends carries a traceparent the test made up, so its spans (and
its log lines) are found by trace id whichever worker served it.
"""

import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx2 as httpx
import pytest

from app import tracing
from app.config import Settings
from app.engines import create_migration_engine
from app.migrations import ROOT, upgrade_to_head
from tests.conftest import TEST_SECRET, TempPostgres
from tests.otlp import (
    CLIENT_KIND,
    SERVER_KIND,
    STATUS_ERROR,
    Receiver,
    Span,
    grpc_receiver,
    http_receiver,
)
from tests.pgbouncer import APP_POOL_SIZE, pgbouncer
from tests.runtime.server import Server, app_env, gunicorn

PASSWORD = "tracing-Secret-pass-" + secrets.token_hex(4)
TRACESTATE = "vendor=opaque-value"
# Exported at once (the test waits for them) or, for the flush test, only at shutdown.
PROMPT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
NEVER_BEFORE_SHUTDOWN = {"OTEL_BSP_SCHEDULE_DELAY": "600000"}


@dataclass
class Workload:
    """What the workload sent: the secrets no span may carry, and its requests' trace ids."""

    traces: dict[str, str] = field(default_factory=dict)  # request -> trace id
    parents: dict[str, str] = field(default_factory=dict)  # request -> the client's span id
    secrets: dict[str, str] = field(default_factory=dict)
    todo_id: str = ""

    def headers(self, request: str, **extra: str) -> dict[str, str]:
        trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
        self.traces[request], self.parents[request] = trace_id, parent
        return {"traceparent": f"00-{trace_id}-{parent}-01", "tracestate": TRACESTATE, **extra}


def run_workload(server: Server) -> Workload:
    """Sign-up (and the same again: a unique violation in the database), login, refresh, a
    todo written, read and searched for: every kind of secret the contract names passes."""
    work = Workload()
    email = f"tracing-{uuid.uuid4().hex[:8]}@example.com"
    title, description = f"Title {uuid.uuid4().hex}", f"Description {uuid.uuid4().hex}"
    work.secrets.update(password=PASSWORD, email=email, title=title, description=description)
    with server.client() as client:
        body = {"email": email, "password": PASSWORD}
        registered = client.post(
            "/api/v1/auth/register", json=body, headers=work.headers("register")
        )
        assert registered.status_code == 201, registered.text
        again = client.post("/api/v1/auth/register", json=body, headers=work.headers("again"))
        assert again.status_code == 409, again.text
        form = {"username": email, "password": PASSWORD}
        login = client.post("/api/v1/auth/token", data=form, headers=work.headers("login"))
        assert login.status_code == 200, login.text
        tokens = login.json()
        refresh = {"refresh_token": tokens["refresh_token"]}
        refreshed = client.post(
            "/api/v1/auth/refresh", json=refresh, headers=work.headers("refresh")
        )
        assert refreshed.status_code == 200, refreshed.text
        for answer in (tokens, refreshed.json()):
            for key, value in answer.items():
                if "token" in key and key != "token_type" and isinstance(value, str):
                    work.secrets[f"{key}#{len(work.secrets)}"] = value
        bearer = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
        todo = {"title": title, "description": description}
        created = client.post("/api/v1/todos", json=todo, headers=work.headers("create", **bearer))
        assert created.status_code == 201, created.text
        work.todo_id = created.json()["id"]
        read = client.get(f"/api/v1/todos/{work.todo_id}", headers=work.headers("read", **bearer))
        assert read.status_code == 200, read.text
        search = client.get(
            "/api/v1/todos", params={"q": title}, headers=work.headers("search", **bearer)
        )
        assert search.status_code == 200, search.text
        assert search.json()["items"], search.text
    return work


def all_arrived(work: Workload) -> Callable[[list[Span]], bool]:
    def done(spans: list[Span]) -> bool:
        served = {span.trace_id for span in spans if span.kind == SERVER_KIND}
        return set(work.traces.values()) <= served

    return done


def server_span(spans: list[Span], trace_id: str) -> Span:
    [found] = [s for s in spans if s.trace_id == trace_id and s.kind == SERVER_KIND]
    return found


def check_contract(spans: list[Span], work: Workload, log: str, database: str) -> None:
    # A server span per request, named <METHOD> <route template>, continuing the client's
    # trace (traceparent and tracestate), with the stable HTTP conventions.
    read = server_span(spans, work.traces["read"])
    assert read.name == "GET /api/v1/todos/{todo_id}"
    assert read.parent_span_id == work.parents["read"]
    assert read.trace_state == TRACESTATE
    assert read.attributes["http.request.method"] == "GET"
    assert read.attributes["http.route"] == "/api/v1/todos/{todo_id}"
    assert read.attributes["http.response.status_code"] == 200
    assert read.attributes["url.path"] == f"/api/v1/todos/{work.todo_id}"
    assert read.attributes["server.address"]
    assert read.status_code != STATUS_ERROR
    assert server_span(spans, work.traces["create"]).name == "POST /api/v1/todos"
    assert server_span(spans, work.traces["again"]).attributes["http.response.status_code"] == 409
    # url.query names the parameters, never their values (q is text searched for in titles).
    assert server_span(spans, work.traces["search"]).attributes["url.query"] == "q=REDACTED"

    # A child span per statement, the statement's text without its parameters.
    statements = [s for s in spans if s.trace_id == work.traces["read"] and s.kind == CLIENT_KIND]
    texts = [s.attributes["db.query.text"] for s in statements if "db.query.text" in s.attributes]
    assert any("FROM todos" in text for text in texts), texts
    assert all(s.attributes["db.system.name"] == database for s in statements)
    assert all(s.parent_span_id == read.span_id for s in statements)
    assert not any(work.todo_id in text or work.todo_id.replace("-", "") in text for text in texts)

    # The password's hashing, on its own thread, inside the request's trace.
    for request in ("register", "login"):
        served = server_span(spans, work.traces[request])
        hashing = [s for s in spans if s.trace_id == work.traces[request] and "password" in s.name]
        assert hashing, request
        assert all(s.parent_span_id == served.span_id for s in hashing), request

    # Nothing secret in any span: name, attributes, status, events, resource; as sent, and as
    # a URL carries it (a title searched for is q=Title+...).
    for span in spans:
        text = span.text()
        for kind, value in work.secrets.items():
            for form in {value, quote(value), quote_plus(value)}:
                assert form not in text, f"{kind} in span {span.name}: {text}"

    # The JSON access line of each request carries its server span's ids; a line logged
    # outside any span carries none.
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = {
        line["trace_id"]: line
        for line in lines
        if line["logger"] == "app.access" and "trace_id" in line
    }
    for request, trace_id in work.traces.items():
        assert access[trace_id]["span_id"] == server_span(spans, trace_id).span_id, request
    started = [line for line in lines if line["message"] == "Application startup complete."]
    assert started
    assert not any("trace_id" in line for line in started)


def worker_pids(log: str) -> set[int]:
    return {int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", log)}


def tracing_env(receiver: Receiver, **extra: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "LOG_FORMAT": "json",
        # Empty means unset, as compose forwards them.
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
        "OTEL_TRACES_SAMPLER": "",
        **extra,
    }


def test_tracing_on_postgresql_with_two_workers(database: TempPostgres, tmp_path: Path) -> None:
    with http_receiver() as receiver:
        env = app_env(database.url, tmp_path, **tracing_env(receiver, **PROMPT))
        with gunicorn(env, tmp_path, workers=2) as server:
            work = run_workload(server)
            spans = receiver.wait_for(all_arrived(work))
            check_contract(spans, work, server.log(), "postgresql")
            # Every worker exports: new connections until spans came from both.
            pids = worker_pids(server.log())
            assert len(pids) == 2
            for _ in range(400):
                if {span.pid for span in receiver.snapshot()} >= pids:
                    break
                assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200
            receiver.wait_for(lambda got: {span.pid for span in got} >= pids)
    assert {span.resource["service.name"] for span in spans} == {"todo-api"}


@pytest.fixture
def migrated(database: TempPostgres, tmp_path: Path) -> str:
    settings = Settings(
        _env_file=None, database_url=database.url, migration_lock_path=tmp_path / "m.lock"
    )
    engine = create_migration_engine(settings)
    try:
        upgrade_to_head(settings, engine)
    finally:
        engine.dispose()
    return database.url


def test_behind_pgbouncer_a_stopping_worker_flushes_what_it_holds(
    migrated: str, tmp_path: Path
) -> None:
    """The contract through PgBouncer, and nothing exported before the workers stop (a batch
    would wait ten minutes): every span arrives because SIGTERM made each worker flush. A 5xx
    marks its server span as an error."""
    unready_trace = secrets.token_hex(16)
    with http_receiver() as receiver, contextlib.ExitStack() as cleanup:
        bouncing = contextlib.ExitStack()
        cleanup.callback(bouncing.close)
        bouncer = bouncing.enter_context(pgbouncer(tmp_path, migrated))
        env = app_env(
            bouncer.url(migrated),
            tmp_path,
            DB_POOL_SIZE=str(APP_POOL_SIZE),
            DB_POOLER="transaction",
            MIGRATE_ON_STARTUP="false",
            OTEL_SERVICE_NAME="todo-behind-pgbouncer",
            **tracing_env(receiver, **NEVER_BEFORE_SHUTDOWN),
        )
        server = cleanup.enter_context(gunicorn(env, tmp_path, workers=2))
        work = run_workload(server)
        bouncing.close()  # PgBouncer gone: readiness answers 503
        headers = {"traceparent": f"00-{unready_trace}-{secrets.token_hex(8)}-01"}
        unready = httpx.get(f"{server.base_url}/health/ready", headers=headers, timeout=30)
        assert unready.status_code == 503
        assert receiver.exports == 0, "exported before the workers stopped"
        assert server.stop() == 0
        arrived = all_arrived(work)
        spans = receiver.wait_for(
            lambda got: arrived(got) and any(s.trace_id == unready_trace for s in got)
        )
        check_contract(spans, work, server.log(), "postgresql")
        failed = server_span(spans, unready_trace)
        assert failed.name == "GET /health/ready"
        assert failed.attributes["http.response.status_code"] == 503
        assert failed.status_code == STATUS_ERROR
        assert {span.resource["service.name"] for span in spans} == {"todo-behind-pgbouncer"}


def test_grpc_when_asked_and_a_callers_unsampled_trace_is_followed(tmp_path: Path) -> None:
    """OTLP over gRPC. A traceparent flagged not sampled (00) is followed: nothing of its
    trace is exported (its request runs without the instrumentations, and still
    answers), though its log lines carry its ids."""
    with grpc_receiver() as receiver:
        env = app_env(
            f"sqlite:///{tmp_path}/grpc.db",
            tmp_path,
            **tracing_env(receiver, OTEL_EXPORTER_OTLP_PROTOCOL="grpc", **PROMPT),
        )
        with gunicorn(env, tmp_path, workers=2) as server, server.client() as client:
            unsampled = secrets.token_hex(16)
            headers = {"traceparent": f"00-{unsampled}-{secrets.token_hex(8)}-00"}
            assert client.get("/health/ready", headers=headers).status_code == 200
            sampled = secrets.token_hex(16)
            headers = {"traceparent": f"00-{sampled}-{secrets.token_hex(8)}-01"}
            assert client.get("/health/ready", headers=headers).status_code == 200
            # One keep-alive connection: one worker served both, the unsampled one first.
            spans = receiver.wait_for(lambda got: any(s.trace_id == sampled for s in got))
            assert server_span(spans, sampled).name == "GET /health/ready"
            assert any(s.kind == CLIENT_KIND and s.trace_id == sampled for s in spans)
            assert not [s for s in spans if s.trace_id == unsampled]
            assert f'"trace_id": "{unsampled}"' in server.log()


def traceparent(trace_id: str) -> dict[str, str]:
    return {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}


def test_the_sdks_sampler_decides_before_the_instrumentation_and_agrees_with_it(
    tmp_path: Path,
) -> None:
    """traceidratio 0.5 ignores the caller's flag and samples a trace whose id's low 64 bits
    are under 2**63: the decision made before the instrumentation runs must be the SDK's own.
    A dropped request skips the instrumented stack and the instrumented engine (and still
    answers): nothing of it is exported, not even a trace of its own for a statement, a
    connection or a password hash; a kept one is whole, its statements included."""
    with http_receiver() as receiver:
        env = app_env(
            f"sqlite:///{tmp_path}/ratio.db",
            tmp_path,
            **tracing_env(
                receiver,
                OTEL_TRACES_SAMPLER="traceidratio",
                OTEL_TRACES_SAMPLER_ARG="0.5",
                **PROMPT,
            ),
        )
        kept = [secrets.token_hex(8) + f"{secrets.randbits(63):016x}" for _ in range(3)]
        dropped = [
            secrets.token_hex(8) + f"{secrets.randbits(63) | 1 << 63:016x}" for _ in range(3)
        ]
        reads = set(kept[1:] + dropped[1:])  # the others ask for readiness
        with gunicorn(env, tmp_path, workers=2) as server, server.client() as client:
            # Signed up, logged in and a todo written in dropped traces: none of it is sent.
            email = f"ratio-{uuid.uuid4().hex[:8]}@example.com"
            body = {"email": email, "password": PASSWORD}
            unsent = traceparent(dropped[0])
            signup = client.post("/api/v1/auth/register", json=body, headers=unsent)
            assert signup.status_code == 201, signup.text
            form = {"username": email, "password": PASSWORD}
            login = client.post("/api/v1/auth/token", data=form, headers=unsent)
            assert login.status_code == 200, login.text
            bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
            todo = {"title": "sampled or not"}
            created = client.post("/api/v1/todos", json=todo, headers={**unsent, **bearer})
            assert created.status_code == 201, created.text
            todo_id = created.json()["id"]
            for trace_id in dropped + kept:
                if trace_id in reads:
                    headers = {**traceparent(trace_id), **bearer}
                    read = client.get(f"/api/v1/todos/{todo_id}", headers=headers)
                    assert read.status_code == 200, read.text
                else:
                    ready = client.get("/health/ready", headers=traceparent(trace_id))
                    assert ready.status_code == 200
            spans = receiver.wait_for(lambda got: {s.trace_id for s in got} >= set(kept))
        for trace_id in kept:
            served = server_span(spans, trace_id)
            statements = [s for s in spans if s.trace_id == trace_id and s.kind == CLIENT_KIND]
            assert statements
            assert all(s.parent_span_id == served.span_id for s in statements)
            if trace_id in reads:
                assert served.name == "GET /api/v1/todos/{todo_id}"
                texts = [s.attributes.get("db.query.text", "") for s in statements]
                assert any("FROM todos" in text for text in texts), texts
            else:
                assert served.name == "GET /health/ready"
        # Besides, only the readiness checks gunicorn() waited on (no traceparent: half of them
        # sampled), each a request's trace: no span started a trace of its own.
        others = {s.trace_id for s in spans} - set(kept)
        assert not others & set(dropped)
        for trace_id in others:
            assert server_span(spans, trace_id).name == "GET /health/ready"


OFF_PROBE = """
import sys
from fastapi.testclient import TestClient
from app.config import Settings
from app.main import create_app
settings = Settings(_env_file=None, database_url=sys.argv[1], secret_key=sys.argv[3],
                    bcrypt_rounds=4, environment="test", migration_lock_path=sys.argv[2])
with TestClient(create_app(settings)) as client:
    assert client.get("/health/ready").status_code == 200
print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
"""


@pytest.mark.parametrize(
    "otel",
    [
        {},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_SERVICE_NAME": "todo-api"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"},
    ],
    ids=["unset", "empty", "sdk-disabled"],
)
def test_off_installs_nothing_at_all(otel: dict[str, str], tmp_path: Path) -> None:
    """Off, not one OpenTelemetry module is imported: no middleware, no listener, no filter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    probe = subprocess.run(  # noqa: S603 - fixed arguments from the tests
        [
            sys.executable,
            "-c",
            OFF_PROBE,
            f"sqlite:///{tmp_path}/off.db",
            str(tmp_path / "m.lock"),
            TEST_SECRET,
        ],
        cwd=ROOT,
        env={**env, **otel},
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.splitlines()[-1] == "[]", probe.stdout + probe.stderr


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "http/protobuf"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"),
        (
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            "http/protobuf",
        ),
    ],
)
def test_the_protocol_is_the_sdks_variable(environ: dict[str, str], expected: str) -> None:
    assert tracing.protocol(environ) == expected


def test_a_protocol_this_service_cannot_speak_is_refused() -> None:
    with pytest.raises(ValueError, match="http/json"):
        tracing.protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
