"""docker-compose.yml as the tests read it: the app service and its environment as compose
would interpolate it. Shared by tests/deploy and tests/runtime (test modules import helpers
from modules like this one, never from one another: tests/test_imports.py)."""

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; tests only

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def compose_file() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def app_service() -> dict[str, Any]:
    app: dict[str, Any] = compose_file()["services"]["app"]
    return app


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ${VAR:-default} and ${VAR}: the default when VAR is unset or empty."""
    return _VARIABLE.sub(lambda m: env.get(m[1]) or (m[2] or ""), value)


def compose_app_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The app container's environment as compose sets it, with `env` as the shell and .env
    (none by default: a first try)."""
    environment = app_service()["environment"]
    return {key: interpolate(str(value), env or {}) for key, value in environment.items()}
