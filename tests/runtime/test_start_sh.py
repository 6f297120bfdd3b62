"""start.sh as the image runs it: non-root, the Dockerfile's environment, several workers."""

import json
import pwd
import stat
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx

from tests.conftest import PASSWORD, TEST_SECRET, TempPostgres
from tests.deploy.compose import compose_app_environment
from tests.runtime import image
from tests.runtime.server import Server, free_port, serve


@contextmanager
def start_image(
    runtime: image.ImageRuntime, database: TempPostgres, tmp_path: Path, **env: str
) -> Iterator[Server]:
    settings = {
        "ENVIRONMENT": "production",
        "SECRET_KEY": TEST_SECRET,
        "WEB_CONCURRENCY": "3",
        "LOG_FORMAT": "json",
        **env,
    }
    with run_image(runtime, database, tmp_path, settings) as server:
        yield server


@contextmanager
def run_image(
    runtime: image.ImageRuntime,
    database: TempPostgres,
    tmp_path: Path,
    env: dict[str, str],
    log_name: str = "server.log",
) -> Iterator[Server]:
    """The image's CMD with the Dockerfile's ENV, then `env`, on this test's database and port."""
    port = free_port()
    settings = runtime.env(**{**env, "DATABASE_URL": database.url})
    settings.update(HOST="127.0.0.1", PORT=str(port))
    with serve(
        image.dockerfile_cmd(),
        settings,
        tmp_path / log_name,
        port,
        cwd=runtime.root,
        user=image.USER,
        inherit_env=False,
    ) as server:
        yield server


def _uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def _json_lines(log: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.splitlines() if line.strip()]


def test_serves_as_non_root_with_the_image_environment(
    image_runtime: image.ImageRuntime, database: TempPostgres, tmp_path: Path
) -> None:
    with start_image(image_runtime, database, tmp_path, BCRYPT_ROUNDS="4") as server:
        master = server.process.pid
        workers = _children(master)
        assert len(workers) == 3
        assert all(_uid(pid) != 0 for pid in [master, *workers])
        with server.client() as client:
            assert client.get("/health").json()["status"] == "healthy"
            assert client.get("/health/ready").json() == {"status": "ready", "database": "ok"}
            email = "image@example.com"
            body = {"email": email, "password": PASSWORD}
            assert client.post("/api/v1/auth/register", json=body).status_code == 201
            tokens = client.post(
                "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
            ).json()
            auth = {"Authorization": f"Bearer {tokens['access_token']}"}
            created = client.post("/api/v1/todos", json={"title": "from start.sh"}, headers=auth)
            assert created.status_code == 201
            path = created.headers["location"]
            assert client.get(path, headers=auth).json()["title"] == "from start.sh"
            patched = client.patch(path, json={"completed": True}, headers=auth)
            assert patched.json()["completed"] is True
            assert client.delete(path, headers=auth).status_code == 204
            assert client.get(path, headers=auth).status_code == 404
        assert server.stop() == 0
    records = _json_lines(server.log())  # every line is one JSON object
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL")]
    assert "Traceback" not in server.log()
    requests = [r for r in records if r["logger"] == "app.access"]
    assert {"request_id", "method", "route", "status", "duration_ms"} <= set(requests[-1])
    assert any(r["route"] == "/api/v1/todos/{todo_id}" for r in requests)


def test_the_dockerfile_healthcheck_passes_and_fails(
    image_runtime: image.ImageRuntime, database: TempPostgres, tmp_path: Path
) -> None:
    command = image.dockerfile_healthcheck()
    with start_image(image_runtime, database, tmp_path, BCRYPT_ROUNDS="4") as server:
        # The container's environment, with this server's port.
        env = image_runtime.env(PORT=server.base_url.rsplit(":", 1)[1])
        result = subprocess.run(  # noqa: S603 - the Dockerfile's own command
            command, env=env, user=image.USER, capture_output=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
    result = subprocess.run(  # noqa: S603
        command, env=env, user=image.USER, capture_output=True, timeout=30
    )
    assert result.returncode != 0  # and it notices when the service is gone


def test_sigterm_lets_in_flight_requests_finish(
    image_runtime: image.ImageRuntime, database: TempPostgres, tmp_path: Path
) -> None:
    # Real bcrypt at a high cost makes each login a slow request (about 1.8 s of CPU at 14,
    # and three workers share two cores), so none can be answered within the pause below:
    # all six are in flight when SIGTERM arrives, and all six must be answered.
    with start_image(image_runtime, database, tmp_path, BCRYPT_ROUNDS="14") as server:
        email = "drain@example.com"
        with server.client() as client:
            body = {"email": email, "password": PASSWORD}
            assert client.post("/api/v1/auth/register", json=body).status_code == 201

        def login(_: int) -> int:
            with httpx.Client(base_url=server.base_url, timeout=60) as client:
                form = {"username": email, "password": PASSWORD}
                return client.post("/api/v1/auth/token", data=form).status_code

        with ThreadPoolExecutor(6) as pool:
            in_flight = [pool.submit(login, i) for i in range(6)]
            # All six sent, accepted and being hashed (a loaded machine needs a moment for that;
            # a request not yet read when SIGTERM arrives is not in flight).
            time.sleep(1.0)
            assert not any(f.done() for f in in_flight), [f.done() for f in in_flight]
            exit_code = server.stop(timeout=60)  # the drain itself may take a while here
            statuses = [f.result() for f in in_flight]
    assert statuses == [200] * 6
    assert exit_code == 0


def test_compose_with_no_env_file_serves_in_production_on_a_generated_key(
    image_runtime: image.ImageRuntime, database: TempPostgres, tmp_path: Path
) -> None:
    """A first `docker compose up`: compose's own defaults, nothing in .env or the shell."""
    env = {
        key: value.replace(image.WORKDIR + "/", f"{image_runtime.root}/")
        for key, value in compose_app_environment().items()
    }
    assert env["ENVIRONMENT"] == "production"
    assert not env["SECRET_KEY"]
    key_file = Path(env["SECRET_KEY_FILE"])
    assert key_file.parent == image_runtime.root / "data"  # the image's private directory
    metrics_port = free_port()
    env.update(BCRYPT_ROUNDS="4", METRICS_PORT=str(metrics_port))  # a free port on this machine
    try:
        with run_image(image_runtime, database, tmp_path, env) as server, server.client() as client:
            user = {"email": "compose@example.com", "password": PASSWORD}
            assert client.post("/api/v1/auth/register", json=user).status_code == 201
            form = {"username": user["email"], "password": PASSWORD}
            tokens = client.post("/api/v1/auth/token", data=form).json()
            auth = {"Authorization": f"Bearer {tokens['access_token']}"}
            assert client.get("/api/v1/users/me", headers=auth).status_code == 200
            assert client.get("/metrics").status_code == 404
            scrape = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
            assert 'route="/api/v1/users/me",status="200"' in scrape.text
        key_mode = stat.S_IMODE(key_file.stat().st_mode)
        assert key_mode == 0o600
        assert key_file.stat().st_uid == _uid_of(image.USER)
        key = key_file.read_text()
        assert len(key.strip().encode()) >= 32

        # A restart signs with the same key: the token issued before still works.
        restarted = run_image(image_runtime, database, tmp_path, env, "restart.log")
        with restarted as again, again.client() as client:
            assert client.get("/api/v1/users/me", headers=auth).status_code == 200
        assert key_file.read_text() == key
        for log in (server.log(), again.log()):
            records = _json_lines(log)
            assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL")], log
    finally:
        key_file.unlink(missing_ok=True)  # the runtime is shared by this session's tests


def _uid_of(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def test_the_image_traces_when_an_endpoint_is_set(
    image_runtime: image.ImageRuntime, database: TempPostgres, tmp_path: Path
) -> None:
    # The slimmed venv (docker/slim-venv.sh cut) still holds all tracing needs, and the
    # bytecode step compiled it, though a service without an endpoint never imports it.
    from tests.otlp import SERVER_KIND, grpc_receiver

    with grpc_receiver() as receiver:
        otel = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        with start_image(image_runtime, database, tmp_path, **otel) as server:
            trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
            headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
            assert httpx.get(f"{server.base_url}/health/ready", headers=headers).status_code == 200
            spans = receiver.wait_for(
                lambda got: any(s.trace_id == trace_id and s.kind == SERVER_KIND for s in got)
            )
            assert server.stop() == 0
    assert {s.name for s in spans if s.trace_id == trace_id} >= {"GET /health/ready", "connect"}
    assert "Traceback" not in server.log()
