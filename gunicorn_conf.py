"""Gunicorn settings for todo-api, all from the environment (start.sh uses this file).

WEB_CONCURRENCY       workers, exactly (else WORKERS_PER_CORE x cores, capped by MAX_WORKERS)
WORKERS_PER_CORE      default 1; MAX_WORKERS default unlimited; never fewer than 2 workers
BIND                  e.g. 0.0.0.0:8000 (else HOST:PORT, default 0.0.0.0:8000)
TIMEOUT               seconds a silent worker may live before it is killed and replaced (60)
GRACEFUL_TIMEOUT      seconds in-flight requests get to finish after SIGTERM (30)
KEEP_ALIVE            seconds an idle keep-alive connection stays open (5)
FORWARDED_ALLOW_IPS   proxies trusted for X-Forwarded-* (default 127.0.0.1; see README)
GUNICORN_CONTROL_SOCKET  a path enables gunicorn's control socket (off by default)
LOG_LEVEL, LOG_FORMAT as for the app; PROMETHEUS_MULTIPROC_DIR (default: a fresh temp dir)
METRICS_PORT          (an app setting) the master serves /metrics on this port, on BIND's host

An empty variable means unset, as in the app's settings: compose forwards every one of them.
"""

import os
import shutil
import tempfile
from typing import Any


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name) or default


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this container may use
    except AttributeError:
        return os.cpu_count() or 1


def _workers() -> int:
    if _env("WEB_CONCURRENCY"):
        return max(1, int(_env("WEB_CONCURRENCY")))
    per_core = float(_env("WORKERS_PER_CORE", "1"))
    workers = max(2, int(per_core * _cores()))
    max_workers = int(_env("MAX_WORKERS", "0"))
    return min(workers, max_workers) if max_workers > 0 else workers


def _metrics_dir() -> str:
    # Per-worker metric files live here; it must start empty, or counts of an earlier run
    # would be summed into this one's.
    path = _env("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="todo-metrics-")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    return path


# Before anything imports prometheus_client: it picks its multiprocess mode at import, and the
# workers inherit the master's imported modules when they fork.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir()

from app.logs import logging_config  # noqa: E402 - must follow the line above

worker_class = "app.server.TodoUvicornWorker"
workers = _workers()
# All interfaces by default: in a container the port is published, not the loopback.
_host = _env("HOST", "0.0.0.0")  # noqa: S104
bind = _env("BIND") or f"{_host}:{_env('PORT', '8000')}"
timeout = int(_env("TIMEOUT", "60"))
graceful_timeout = int(_env("GRACEFUL_TIMEOUT", "30"))
keepalive = int(_env("KEEP_ALIVE", "5"))
forwarded_allow_ips = _env("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Container logs: everything to stdout in one format. Request lines come from the app's own
# middleware (with request id, route and duration), so gunicorn's access log stays off.
accesslog = None
logconfig_dict = logging_config(_env("LOG_LEVEL", "INFO"), _env("LOG_FORMAT", "console"))
# gunicorn >= 25 opens a control socket under $XDG_RUNTIME_DIR or $HOME; a container user
# often has neither writable. Off unless asked for, with a path that is known to work.
control_socket_disable = not _env("GUNICORN_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = _env("GUNICORN_CONTROL_SOCKET")


def on_starting(server: Any) -> None:
    # RESET_DB wipes the database: do it once, here in the master, not once per worker.
    from app.lifespan import reset_database_once

    reset_database_once()


def when_ready(server: Any) -> None:
    # METRICS_PORT: the master, which forks every worker and serves no request, answers the
    # scrapes (prometheus_client's multiprocess pattern), on the API's host but not its port.
    from app.config import get_settings

    settings = get_settings()
    port = settings.metrics_port
    if port is None:
        return
    from app.metrics import serve_from_master

    host = _metrics_host(bind)
    serve_from_master(host, port, settings.header_timeout)
    server.log.info("metrics on http://%s:%s/metrics", host, port)


def _metrics_host(address: str) -> str:
    if address.startswith(("unix:", "fd://")):
        return _host
    return address.rpartition(":")[0].strip("[]") or _host


def child_exit(server: Any, worker: Any) -> None:
    # A dead worker's counts stay in the totals; its live gauges must not.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
