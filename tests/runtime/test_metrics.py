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
from tests.runtime.server import Server, app_env, free_port, gunicorn

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
    return _count(httpx.get(f"{server.base_url}/metrics", timeout=10).text, "/health", "200")


def _count(text: str, route: str, status: str) -> float:
    """http_requests_total for one GET route and status, or 0 if absent."""
    labels = f'method="GET",route="{route}",status="{status}"'
    match = re.search(rf"^http_requests_total\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
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


def test_metrics_port_serves_the_sum_over_workers_and_the_api_port_hides_them(
    database: TempPostgres, tmp_path: Path, metrics_dir: Path
) -> None:
    metrics_port = free_port()
    env = app_env(
        database.url,
        tmp_path,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        METRICS_PORT=str(metrics_port),
    )
    with gunicorn(env, tmp_path, workers=WORKERS) as server:
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(lambda _: _get_health(server), range(REQUESTS))) == {200}
        pids_with_files = {
            int(m.group(1))
            for p in metrics_dir.iterdir()
            if (m := re.search(r"_(\d+)\.db$", p.name))
        }
        assert len(pids_with_files) > 1, "the requests should have reached several workers"

        response = httpx.get(metrics_url, timeout=10)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert _count(response.text, "/health", "200") == REQUESTS  # every worker's, summed
        live = re.findall(r'^process_resident_memory_bytes\{pid="(\d+)"\}', response.text, re.M)
        assert {int(pid) for pid in live} == set(_worker_pids(server))

        # The public port no longer answers it, and the 404s are counted like any request.
        hidden = httpx.get(f"{server.base_url}/metrics", timeout=10)
        assert hidden.status_code == 404
        assert hidden.json() == {"detail": "Not Found"}
        assert "/metrics" not in httpx.get(f"{server.base_url}/openapi.json", timeout=10).text
        again = httpx.get(metrics_url, timeout=10).text
        assert _count(again, "unmatched", "404") == 1
        # The metrics server lives in the master: not one worker listens on it.
        assert server.stop() == 0
    log = server.log()
    assert "Traceback" not in log
    with pytest.raises(httpx.TransportError):
        httpx.get(metrics_url, timeout=2)
