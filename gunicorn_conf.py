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
"""

import os
import shutil
import tempfile
from typing import Any


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this container may use
    except AttributeError:
        return os.cpu_count() or 1


def _workers() -> int:
    if os.environ.get("WEB_CONCURRENCY"):
        return max(1, int(os.environ["WEB_CONCURRENCY"]))
    per_core = float(os.environ.get("WORKERS_PER_CORE", "1"))
    workers = max(2, int(per_core * _cores()))
    max_workers = int(os.environ.get("MAX_WORKERS", "0"))
    return min(workers, max_workers) if max_workers > 0 else workers


def _metrics_dir() -> str:
    # Per-worker metric files live here; it must start empty, or counts of an earlier run
    # would be summed into this one's.
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="todo-metrics-")
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
_host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104
bind = os.environ.get("BIND") or f"{_host}:{os.environ.get('PORT', '8000')}"
timeout = int(os.environ.get("TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("KEEP_ALIVE", "5"))
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Container logs: everything to stdout in one format. Request lines come from the app's own
# middleware (with request id, route and duration), so gunicorn's access log stays off.
accesslog = None
logconfig_dict = logging_config(
    os.environ.get("LOG_LEVEL", "INFO"), os.environ.get("LOG_FORMAT", "console")
)
# gunicorn >= 25 opens a control socket under $XDG_RUNTIME_DIR or $HOME; a container user
# often has neither writable. Off unless asked for, with a path that is known to work.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]


def on_starting(server: Any) -> None:
    # RESET_DB wipes the database: do it once, here in the master, not once per worker.
    from app.main import reset_database_once

    reset_database_once()


def child_exit(server: Any, worker: Any) -> None:
    # A dead worker's counts stay in the totals; its live gauges must not.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
