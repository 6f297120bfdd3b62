import os
from collections.abc import Iterator

import pytest

from tests.cluster.report import TABLE, render
from tests.cluster.rig import Rig, haproxy_binary, running_rig
from tests.faults.cluster import ClusterUnavailable
from tests.pgbouncer import pgbouncer_binary


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true requires the cluster tests: {reason}")
    pytest.skip(f"SKIPPING CLUSTER TESTS: {reason}")


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    """PostgreSQL, PgBouncer, three replicas, HAProxy: one rig for the module's scenarios,
    which run in order on it (a scenario may leave new replicas behind, as a rollout does)."""
    haproxy = haproxy_binary()
    if haproxy is None:
        _unavailable("haproxy not found (apt-get install -y haproxy; make test-cluster does)")
    if pgbouncer_binary() is None:
        _unavailable("pgbouncer not found (apt-get install -y pgbouncer)")
    assert haproxy is not None
    try:
        with running_rig(haproxy) as running:
            yield running
    except ClusterUnavailable as exc:
        _unavailable(str(exc))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TABLE:
        terminalreporter.section("cluster scenarios")
        terminalreporter.write_line(render(TABLE))
