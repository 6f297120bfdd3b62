"""Two checkouts testing on one machine do not collide: TEST_DB_PREFIX names the databases the
tests create, TEST_PORTS the ports their servers listen on (tests/isolation.py)."""

import re
import socket
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import TempPostgres, postgres_admin_url
from tests.isolation import database_name, free_port, port_range

TESTS = Path(__file__).resolve().parent


def _exists(admin_url: str, name: str) -> bool:
    engine = create_engine(admin_url)
    try:
        with engine.connect() as connection:
            query = text("SELECT 1 FROM pg_database WHERE datname = :name")
            return connection.scalar(query, {"name": name}) == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_test_databases_carry_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = postgres_admin_url()
    assert database_name("test").startswith("todo_test_")  # the default, as before
    monkeypatch.setenv("TEST_DB_PREFIX", "checkout2")
    database = TempPostgres.create(admin, role="migrate")
    try:
        assert re.fullmatch(r"checkout2_migrate_[0-9a-f]{12}", database.name)
        assert _exists(admin, database.name)
    finally:
        database.drop()
    assert not _exists(admin, database.name)


@pytest.mark.parametrize("prefix", ["Todo", "1st", "todo-2", "x" * 31, "a;drop"])
def test_a_prefix_postgresql_would_misread_is_refused(
    monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    monkeypatch.setenv("TEST_DB_PREFIX", prefix)
    with pytest.raises(ValueError, match="TEST_DB_PREFIX"):
        database_name("test")


def test_ports_come_from_test_ports_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        first = taken.getsockname()[1]
        last = min(first + 9, 65535)
        monkeypatch.setenv("TEST_PORTS", f"{first}-{last}")
        ports = [free_port() for _ in range(3)]
    assert all(first < port <= last for port in ports), ports  # never the one in use
    assert len(set(ports)) == 3  # in turn: not the same port twice in a row


def test_each_test_worker_takes_its_own_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PORTS", "20000-20999")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    assert port_range() == range(20500, 21000)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    assert port_range() == range(20000, 20500)
    monkeypatch.delenv("TEST_PORTS")
    assert port_range() is None  # unset: the kernel picks, as before


@pytest.mark.parametrize("spec", ["20000", "20999-20000", "80-90", "20000-70000", "a-b"])
def test_a_port_range_that_is_not_one_is_refused(
    monkeypatch: pytest.MonkeyPatch, spec: str
) -> None:
    monkeypatch.setenv("TEST_PORTS", spec)
    with pytest.raises(ValueError, match="TEST_PORTS"):
        free_port()


def test_no_test_names_a_database_or_picks_a_port_its_own_way() -> None:
    """Every database name and port goes through tests/isolation.py, or TEST_DB_PREFIX and
    TEST_PORTS do not cover it."""
    own_ways = {
        "a database named in place": re.compile(r"""(prefix\s*=\s*|create_database\()["']todo_"""),
        "a database created in place": re.compile(r"CREATE DATABASE"),
        "a port the kernel picks": re.compile(r"""\.bind\(\(\s*["'][0-9.]+["'],\s*0\s*\)\)"""),
    }
    found = [
        f"{path.relative_to(TESTS)}: {what}"
        for path in sorted(TESTS.rglob("*.py"))
        # The two places that create databases, both named by database_name().
        if str(path.relative_to(TESTS)) not in {"isolation.py", "conftest.py", "faults/cluster.py"}
        and path.name != "test_isolation.py"
        for what, pattern in own_ways.items()
        if pattern.search(path.read_text())
    ]
    assert found == []
