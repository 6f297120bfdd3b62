"""Prometheus metrics: request counts and latency by method, route template and status.

Under gunicorn every worker is a process of its own: with PROMETHEUS_MULTIPROC_DIR set
(gunicorn_conf.py sets it), each worker writes its samples to files there and /metrics sums
them over all workers, live and dead (gunicorn_conf.py marks dead workers so their gauges
go, while their counts stay in the totals). Without it (a single process), the default
registry serves. With METRICS_PORT, gunicorn's master serves the same sums on that port
instead (serve_from_master), and the app has no /metrics route.
"""

import os
from collections.abc import Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from app import metrics_server

REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from request to complete response",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


# The label children per (method, route, status): `labels()` validates its arguments and looks
# the child up under a lock on every call; there are a few dozen such triples, and a child
# lives as long as its metric.
_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    children = _children.get(key)
    if children is None:
        labels = (method, route, str(status))
        children = _children[key] = (REQUESTS.labels(*labels), LATENCY.labels(*labels))
    children[0].inc()
    children[1].observe(seconds)


class WorkerProcessCollector(Collector):
    """process_* metrics of every live worker, labelled by pid (multiprocess mode)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def collect(self) -> Iterable[Metric]:
        # One family per metric, a sample per worker: repeating a family is invalid text format.
        families: dict[str, Metric] = {}
        for pid in sorted(_live_worker_pids(self.directory)):
            for metric in ProcessCollector(pid=_pid_getter(pid), registry=None).collect():
                family = families.setdefault(
                    metric.name, Metric(metric.name, metric.documentation, metric.type)
                )
                family.samples.extend(
                    sample._replace(labels={**sample.labels, "pid": str(pid)})
                    for sample in metric.samples
                )
        return families.values()


def _pid_getter(pid: int) -> Callable[[], int]:
    return lambda: pid


def _live_worker_pids(directory: str) -> set[int]:
    pids = set()
    for name in os.listdir(directory):
        stem = name.rsplit(".", 1)[0]
        pid = stem.rsplit("_", 1)[-1]
        if pid.isdigit() and os.path.exists(f"/proc/{pid}"):
            pids.add(int(pid))
    return pids


def multiprocess_registry(directory: str) -> CollectorRegistry:
    """Every worker's samples, read from their files at each collection."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    registry.register(WorkerProcessCollector(directory))
    return registry


def render() -> tuple[bytes, str]:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    return generate_latest(multiprocess_registry(directory)), CONTENT_TYPE_LATEST


def serve_from_master(host: str, port: int, header_timeout: float) -> None:
    """prometheus_client's multiprocess pattern: the gunicorn master, which serves no request,
    answers scrapes on a port of its own from a background thread (app.metrics_server: one
    thread, bounded, with a deadline for each request)."""
    registry = multiprocess_registry(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    metrics_server.start(
        host, port, lambda: (generate_latest(registry), CONTENT_TYPE_LATEST), header_timeout
    )
