"""The `postgres` marker is on every test that uses PostgreSQL: `-m "not postgres"` runs
SQLite only (what a machine without PostgreSQL, or a quick run, asks for)."""

import subprocess
import sys

import pytest

from app.migrations import ROOT
from tests.conftest import postgres_admin_url

# A module of each kind: the backend-parametrised API tests, the empty-database migration
# tests, tests with a `database` fixture, with the fault tests' own server, and marked by hand.
MODULES = [
    "tests/accounts/test_me.py",
    "tests/test_migrations.py",
    "tests/runtime/test_pgbouncer.py",
    "tests/faults/test_database_faults.py",
    "tests/runtime/test_throttle_workers.py",
]


def collected(marker: str) -> list[str]:
    result = subprocess.run(  # noqa: S603 - this interpreter's pytest, fixed arguments
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-m", marker, *MODULES],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_not_postgres_selects_sqlite_only_and_postgres_the_rest() -> None:
    sqlite_only, postgres = collected("not postgres"), collected("postgres")
    assert sqlite_only, "the SQLite tests of these modules are selected"
    # Parametrised tests say their backend; unparametrised ones (SQLite files of their own)
    # must not reach PostgreSQL: postgres_admin_url() fails them if they do.
    assert not [test for test in sqlite_only if "[postgres" in test or "[pgbouncer" in test]
    assert any("[sqlite" in test for test in sqlite_only), sqlite_only
    assert not set(sqlite_only) & set(postgres)
    for module in MODULES:
        assert any(test.startswith(module) for test in postgres), module
    assert not [test for test in postgres if "[sqlite" in test]


def test_reaching_postgresql_without_the_marker_fails() -> None:
    """The backstop for a test the collection hook misses: this one is not marked."""
    with pytest.raises(pytest.fail.Exception, match="without the postgres marker"):
        postgres_admin_url()
