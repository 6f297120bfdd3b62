"""Import what the service imports, so that Python writes bytecode for exactly those modules.

`docker/slim-venv.sh bytecode` runs this once, with bytecode writing on, from a copy of the
image's WORKDIR, in a virtualenv that `slim-venv.sh cut` left without any .pyc. It walks the
paths the service takes: gunicorn's master and its config file, the uvicorn worker's config
and protocols, both PostgreSQL drivers (engines are created, never connected), the app's
startup (migrations on a throwaway SQLite database) and a request of each kind the API serves.
"""

import asyncio
import importlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

PASSWORD = "warm-bytecode-password"  # noqa: S105 - a throwaway user in a throwaway database


async def request(
    app: Any, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One HTTP request straight into the ASGI app, as uvicorn would hand it over."""
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"localhost")]
        + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop()
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return status, body


async def serve_once(config: Any) -> None:
    """Startup, a request of each kind, shutdown: through uvicorn's own lifespan runner."""
    from uvicorn.lifespan.on import LifespanOn

    lifespan = LifespanOn(config)
    await lifespan.startup()
    if lifespan.should_exit:
        raise SystemExit("warm_bytecode: the app's startup failed")
    asgi = config.loaded_app
    json_type = {"content-type": "application/json"}
    form_type = {"content-type": "application/x-www-form-urlencoded"}
    user = json.dumps({"email": "warm@example.com", "password": PASSWORD}).encode()
    login = urlencode({"username": "warm@example.com", "password": PASSWORD}).encode()
    checks = [await request(asgi, "POST", "/api/v1/auth/register", user, json_type)]
    status, body = await request(asgi, "POST", "/api/v1/auth/token", login, form_type)
    checks.append((status, body))
    auth = {"authorization": "Bearer " + json.loads(body)["access_token"]}
    todo = json.dumps({"title": "warm"}).encode()
    status, body = await request(asgi, "POST", "/api/v1/todos", todo, {**auth, **json_type})
    checks.append((status, body))
    todo_path = f"/api/v1/todos/{json.loads(body)['id']}"
    done = json.dumps({"completed": True}).encode()
    for method, path, payload, headers in [
        ("GET", "/api/v1/users/me", b"", auth),
        ("GET", "/api/v1/todos?limit=10", b"", auth),
        ("GET", todo_path, b"", auth),
        ("PATCH", todo_path, done, {**auth, **json_type}),
        ("DELETE", todo_path, b"", auth),
        ("GET", todo_path, b"", auth),  # 404
        ("POST", "/api/v1/todos", b'{"title": ""}', {**auth, **json_type}),  # 422
        ("GET", "/api/v1/users/me", b"", {"authorization": "Bearer not-a-token"}),  # 401
        ("GET", "/api/v1/lists", b"", auth),
        ("GET", "/api/v1/changes?limit=10", b"", auth),  # the change feed (app.changes)
        ("GET", "/", b"", {}),
        ("GET", "/health", b"", {}),
        ("GET", "/health/ready", b"", {}),
        ("GET", "/metrics", b"", {}),
        ("GET", "/openapi.json", b"", {}),
        ("GET", "/docs", b"", {}),
        ("GET", "/redoc", b"", {}),
        ("GET", "/static-offline-docs/swagger-ui.css", b"", {}),  # the docs' own assets
    ]:
        checks.append(await request(asgi, method, path, payload, headers))
    await lifespan.shutdown()
    statuses = [status for status, _ in checks]
    expected = [201, 200, 201, 200, 200, 200, 200, 204, 404, 422, 401]  # then all 200
    if statuses[: len(expected)] != expected or any(s != 200 for s in statuses[len(expected) :]):
        raise SystemExit(f"warm_bytecode: unexpected answers {statuses}")


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="warm-bytecode-"))
    os.environ.update(
        DATABASE_URL=f"sqlite:///{scratch}/warm.db",
        SECRET_KEY_FILE=str(scratch / "secret_key"),
        MIGRATION_LOCK_PATH=str(scratch / "migrate.lock"),
        PROMETHEUS_MULTIPROC_DIR=str(scratch / "metrics"),
        BCRYPT_ROUNDS="4",
        LOG_LEVEL="WARNING",
        LOG_FORMAT="json",
    )
    sys.path.insert(0, os.getcwd())
    # gunicorn's master: its CLI and arbiter, the logger class it loads by name, and the
    # config file start.sh names.
    master = ("gunicorn.app.wsgiapp", "gunicorn.arbiter", "gunicorn.glogging", "gunicorn_conf")
    for module in master:
        importlib.import_module(module)

    # Tracing's modules: imported only when an OTLP endpoint is set (app/tracing.py).
    from app.tracing import MODULES as TRACING_MODULES

    for module in TRACING_MODULES:
        importlib.import_module(module)

    # Both PostgreSQL paths, without a server: the asyncpg engine the requests use and the
    # psycopg2 engine the migrations use load their dialects and drivers when created.
    from app.config import Settings
    from app.engines import create_db_engine, create_migration_engine

    postgres = Settings(database_url="postgresql://warm:warm@127.0.0.1:1/warm")
    create_migration_engine(postgres).dispose()
    asyncio.run(create_db_engine(postgres).dispose())
    # The rate limits' Redis storage (compose and Kubernetes count in Redis): limits' storage
    # and redis-py's asyncio client load when the limiter is built; nothing connects.
    from app.ratelimit.limiter import Limiter

    Limiter(Settings(rate_limit_storage="redis://127.0.0.1:1/0"))

    # A worker: the uvicorn config the worker class builds (log_config=None: gunicorn's logging
    # stays), its protocol, loop, websockets and middleware modules, then the app itself.
    import uvicorn

    import app.main
    from app.server import TodoUvicornWorker

    config = uvicorn.Config(app.main.app, log_config=None, **TodoUvicornWorker.CONFIG_KWARGS)
    config.load()
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(serve_once(config))


if __name__ == "__main__":
    main()
