"""Logging to stdout: one JSON object per line (LOG_FORMAT=json) or readable lines (console).

The same configuration serves the app, uvicorn and gunicorn (gunicorn_conf.py passes it as
logconfig_dict), so every line a container prints has one shape. Request lines come from
the request middleware (with request id, route template, status and duration); uvicorn's own
access log is silenced so nothing is logged twice.
"""

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

from app.context import request_id_var

ACCESS_LOGGER = "app.access"
# Extra fields the request middleware attaches to access records, in output order.
REQUEST_FIELDS = ("request_id", "method", "route", "path", "status", "duration_ms", "client")


class RequestIdFilter(logging.Filter):
    """Stamps every record with the id of the request being served (or "-")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in REQUEST_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                payload[field] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def logging_config(level: str = "INFO", fmt: str = "console") -> dict[str, Any]:
    stdout = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
        "formatter": fmt,
        "filters": ["request_id"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {
            "json": {"()": JsonFormatter},
            "console": {
                "format": "%(asctime)s %(levelname)-7s [%(name)s] [%(request_id)s] %(message)s"
            },
        },
        "handlers": {"stdout": stdout},
        "root": {"level": level.upper(), "handlers": ["stdout"]},
        "loggers": {
            # gunicorn and uvicorn bring handlers of their own: route them through ours.
            **{
                name: {"level": level.upper(), "handlers": ["stdout"], "propagate": False}
                for name in ("gunicorn.error", "uvicorn", "uvicorn.error")
            },
            # Alembic's plugin chatter; its "Running upgrade" lines stay.
            "alembic.runtime.plugins": {"level": "WARNING"},
            # Request lines come from app.access, with more detail.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }


def configure_logging(level: str, fmt: str) -> None:
    logging.config.dictConfig(logging_config(level, fmt))
