"""app.main:app, what uvicorn and gunicorn serve: a plain module attribute an editor can follow
(issue 18), which reads no configuration at import and reads it as the server starts it."""

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import app.main
from app.config import Settings, get_settings
from app.main import API_PREFIX, create_app
from tests.conftest import TEST_SECRET
from tests.runtime.server import free_port

ROOT = Path(__file__).resolve().parents[1]
# Settings no server may start with; importing the module must not care.
BAD = {"ENVIRONMENT": "production", "DATABASE_URL": "mysql://nope"}


_SETTING_NAMES = {name.upper() for name in Settings.model_fields}


def _env(**settings: str) -> dict[str, str]:
    """This environment without any of the service's settings, then `settings`."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in _SETTING_NAMES}
    return {**env, "PYTHONPATH": str(ROOT), **settings}


def test_app_is_assigned_at_module_level() -> None:
    tree = ast.parse(Path(app.main.__file__).read_text())
    assigned = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(target, "id", None) for target in node.targets] == ["app"]
    ]
    assert len(assigned) == 1
    assert not hasattr(app.main, "__getattr__")
    assert "app" in vars(app.main)


def test_importing_app_main_reads_no_configuration(tmp_path: Path) -> None:
    code = "import app.main; print(type(app.main.app).__name__)"
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-c", code],
        cwd=tmp_path,  # no .env here
        env=_env(**BAD),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "FastAPI"


def test_a_bad_setting_makes_the_server_fail_to_start(tmp_path: Path) -> None:
    """Read in the lifespan, a bad setting is a failed startup (uvicorn exits), not an app
    that uvicorn's lifespan "auto" would take for one without a lifespan and serve anyway."""
    port = str(free_port())
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", port]
    result = subprocess.run(  # noqa: S603 - fixed arguments
        command,
        cwd=tmp_path,
        env=_env(**BAD),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "DATABASE_URL must start with" in result.stderr
    assert "Application startup failed" in result.stderr


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    for name in _SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    settings = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "SECRET_KEY": TEST_SECRET,
        "MIGRATION_LOCK_PATH": str(tmp_path / "migrate.lock"),
        "PROJECT_NAME": "configured-at-startup",
        "CORS_ORIGINS": "https://app.example",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("environment")
def test_an_app_without_settings_is_configured_as_it_starts() -> None:
    application = create_app()
    assert not hasattr(application.state, "settings")  # nothing read yet
    with TestClient(application) as client:
        info = client.get("/")
        preflight = client.options(
            "/api/v1/todos",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
            },
        )
    assert info.status_code == 200
    assert info.json()["name"] == "configured-at-startup"
    # The middleware the settings shape at startup is in the stack requests go through.
    assert info.headers["x-request-id"]
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"


def _wiring(application: FastAPI) -> tuple[list[str], list[str]]:
    """The app's routes and middleware, as what an editor reads in create_app()."""
    paths = [getattr(route, "path", "") for route in application.routes]
    middleware = [getattr(entry.cls, "__name__", "") for entry in application.user_middleware]
    return paths, middleware


@pytest.mark.usefixtures("environment")
def test_routes_and_middleware_are_wired_when_the_app_is_built() -> None:
    """Issue 24: create_app() wires every route and middleware itself, and its lifespan adds
    none (no resetting Starlette's middleware_stack to slip some in after the start)."""
    unconfigured = create_app()
    built = _wiring(unconfigured)
    assert f"{API_PREFIX}/todos" in built[0]
    assert f"{API_PREFIX}/users/me" in built[0]
    with TestClient(unconfigured) as client:
        assert client.get("/").json()["name"] == "configured-at-startup"
    assert _wiring(unconfigured) == built  # starting it changed nothing
    # With settings or without, one wiring: tests run the app's code path the servers run.
    assert _wiring(create_app(get_settings())) == built


@pytest.mark.usefixtures("environment")
def test_tracing_is_wired_when_the_app_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 24: with tracing on, the instrumentation is in the stack create_app() wired, built
    as the lifespan starts; the lifespan only hands it its tracer provider, and nothing resets
    the stack for a later build (tests/runtime/test_tracing.py sees the spans arrive)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")  # no span: nothing to export
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "")  # instrument() sets it; undone after
    application = create_app()
    with TestClient(application) as client:
        stack = application.middleware_stack
        assert type(stack).__name__ == "SampleFirst"
        assert client.get("/health").status_code == 200
        assert application.middleware_stack is stack
    source = "\n".join(path.read_text() for path in (ROOT / "app").rglob("*.py"))
    assert "middleware_stack = None" not in source


@pytest.mark.usefixtures("environment")
def test_metrics_port_hides_the_route_that_is_wired(monkeypatch: pytest.MonkeyPatch) -> None:
    """With METRICS_PORT, gunicorn's master serves /metrics: the API port answers as if the
    route did not exist (a 404 like any unknown path, and absent from the docs)."""
    monkeypatch.setenv("METRICS_PORT", str(free_port()))
    get_settings.cache_clear()
    for application in (create_app(), create_app(get_settings())):
        with TestClient(application) as client:
            hidden = client.get("/metrics")
            schema = client.get("/openapi.json").json()
        assert hidden.status_code == 404
        assert hidden.json() == {"detail": "Not Found"}
        assert "/metrics" not in schema["paths"]
        assert "/api/info" in schema["paths"]
