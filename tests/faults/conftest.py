import os
from collections.abc import Iterator

import pytest

from tests.faults.cluster import ClusterUnavailable, PostgresCluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """A private PostgreSQL cluster for this module's tests; stopped and removed afterwards."""
    try:
        created = PostgresCluster.create()
    except ClusterUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires the database fault tests: {exc}")
        pytest.skip(f"SKIPPING DATABASE FAULT TESTS: {exc}")
    try:
        created.start()
        yield created
    finally:
        created.destroy()


@pytest.fixture
def fault_database_url(cluster: PostgresCluster) -> Iterator[str]:
    """A fresh database on a running cluster (a previous test may have left it stopped)."""
    if not cluster.is_running():
        cluster.start()
    name = cluster.create_database()
    try:
        yield cluster.url(name)
    finally:
        if not cluster.is_running():
            cluster.start()
        cluster.drop_database(name)
