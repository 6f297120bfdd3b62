"""Statements stay in repositories: tools/check_layers.py (in `make lint`) passes on app/ and
catches a service that runs one itself, however it reaches the session or connection."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import check_layers  # noqa: E402


def test_app_keeps_its_statements_in_repositories() -> None:
    result = subprocess.run(
        [sys.executable, "tools/check_layers.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "call",
    [
        "await session.execute(stmt)",
        "await session.scalar(stmt)",
        "await self.session.scalars(stmt)",
        "await (await session.connection()).execute(stmt)",
        "connection.execute(stmt)",
        "await conn.exec_driver_sql('SELECT 1')",
    ],
)
def test_a_statement_outside_a_repository_is_reported(call: str) -> None:
    source = f"async def handler(session, self, connection, conn, stmt):\n    {call}\n"
    found = list(check_layers.violations(Path("app/todos/service.py"), source))
    assert len(found) == 1
    assert "app/todos/service.py:2" in found[0]


def test_reading_a_result_is_not_a_statement() -> None:
    source = "def f(result):\n    return result.scalar()\n"
    assert list(check_layers.violations(Path("app/x.py"), source)) == []


def test_repositories_and_the_named_places_are_allowed() -> None:
    assert check_layers.allowed("app/todos/repository.py")
    assert check_layers.allowed("app/idempotency/repository.py")
    assert check_layers.allowed("app/accounts/login_repository.py")
    assert not check_layers.allowed("app/todos/service.py")
    # accounts has repositories of its own: none of its services is excused any more.
    for module in ("access", "service", "users", "password", "throttle", "devices"):
        assert not check_layers.allowed(f"app/accounts/{module}.py"), module
