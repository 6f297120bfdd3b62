"""/metrics counts requests over every gunicorn worker, and keeps a killed worker's counts."""

import os
import re
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import TempPostgres
from tests.runtime.server import Server, app_env, gunicorn

WORKERS = 3
REQUESTS = 60


@pytest.fixture
def metrics_dir(tmp_path: Path) -> Path:
    return tmp_path / "metrics"


@pytest.fixture
def server(database: TempPostgres, tmp_path: Path, metrics_dir: Path) -> Iterator[Server]:
    env = app_env(database.url, tmp_path, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    with gunicorn(env, tmp_path, workers=WORKERS) as running:
        yield running


def _health_count(server: Server) -> float:
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    match = re.search(
        r'^http_requests_total\{method="GET",route="/health",status="200"\} (\S+)$',
        text,
        re.MULTILINE,
    )
    return float(match.group(1)) if match else 0.0


def _worker_pids(server: Server) -> list[int]:
    path = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    return [int(pid) for pid in path.read_text().split()]


def _get_health(server: Server) -> int:
    # A connection per request, so the requests land on different workers.
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        return client.get("/health").status_code


def test_counts_are_summed_over_workers_and_survive_a_dead_worker(
    server: Server, metrics_dir: Path
) -> None:
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda _: _get_health(server), range(REQUESTS))) == {200}
    assert _health_count(server) == REQUESTS

    pids_with_files = {
        int(m.group(1)) for p in metrics_dir.iterdir() if (m := re.search(r"_(\d+)\.db$", p.name))
    }
    assert len(pids_with_files) > 1, "the requests should have reached several workers"

    victim = _worker_pids(server)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        victim in _worker_pids(server) or len(_worker_pids(server)) < WORKERS
    ):
        time.sleep(0.2)
    assert len(_worker_pids(server)) == WORKERS  # the master replaced it

    assert _health_count(server) == REQUESTS  # its counts are still in the total
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    assert f'pid="{victim}"' not in text  # its process metrics are gone
    assert re.search(r'^process_resident_memory_bytes\{pid="\d+"\}', text, re.MULTILINE)
