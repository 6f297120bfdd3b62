"""Logging to stdout: one JSON object per line (LOG_FORMAT=json) or readable lines (console).

The same configuration serves the app, uvicorn and gunicorn (gunicorn_conf.py passes it as
logconfig_dict), so every line a container prints has one shape. Request lines come from
the request middleware (with request id, route template, status and duration); uvicorn's own
access log is silenced so nothing is logged twice.

No client can start a line that passes for a record: JSON escapes every control character
itself, one record per line. The console format escapes them (the request path is the
client's), keeps a request's access line on one line, and writes a traceback, or a message of
several lines (uvicorn logs a failed startup's traceback as one), as real lines indented under
the record they belong to.
"""

import json
import logging
import logging.config
import math
import re
import time
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from app.context import request_id_var

# What a record gathers that no line here prints: the caller's file and line (a walk up the
# stack per record), thread, process and asyncio task names. The logging HOWTO's
# "Optimization" section names these switches; every process that logs imports this module.
logging._srcfile = None
logging.logThreads = False
logging.logProcesses = False
logging.logMultiprocessing = False
setattr(logging, "logAsyncioTasks", False)  # noqa: B010 - Python 3.12+; mypy checks 3.11

ACCESS_LOGGER = "app.access"
# Extra fields the request middleware attaches to access records, in output order.
REQUEST_FIELDS = ("request_id", "method", "route", "path", "status", "duration_ms", "client")
# While tracing is on (app.tracing), the active span's ids, as in traceparent.
TRACE_FIELDS = ("trace_id", "span_id")
CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s [%(name)s] [%(request_id)s] %(message)s"
# C0 and C1 controls and DEL (line feeds, carriage returns, terminal escapes), Unicode's line
# and paragraph separators, and the invisible bidi and zero-width formatting characters.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)


def escape_controls(text: str) -> str:
    """`text` with every unsafe character written as a Python escape (\\n, \\x1b, \\u2028)."""
    if _UNSAFE.search(text) is None:  # the common case: nothing to copy
        return text
    return _UNSAFE.sub(lambda match: match[0].encode("unicode_escape").decode("ascii"), text)


# Set by app.tracing while tracing is on, and only then: off, a record costs what it did
# before tracing existed (no lookup of a span, no fields to look for).
_span_ids: Callable[[], tuple[str, str] | None] | None = None
_json_fields: tuple[str, ...] = REQUEST_FIELDS


def correlate(span_ids: Callable[[], tuple[str, str] | None] | None) -> None:
    """Stamp records with span_ids()'s (trace_id, span_id) while a span is active (None: stop)."""
    global _span_ids, _json_fields
    _span_ids = span_ids
    _json_fields = REQUEST_FIELDS if span_ids is None else REQUEST_FIELDS + TRACE_FIELDS


class RequestIdFilter(logging.Filter):
    """Stamps every record with the id of the request being served (or "-"), and with the
    active span's ids while tracing is on. A filter runs where the record is made: in the
    request's context, where its span is current."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if _span_ids is not None and (ids := _span_ids()) is not None:
            record.trace_id, record.span_id = ids
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: exactly what json.dumps(payload, default=str) writes
    (tests/test_logs.py checks it field for field), but built by hand. A request's line is
    written on every request's path, and json.dumps's general encoder was most of its cost:
    strings go through the same C escaper json.dumps uses (ASCII only, every control
    character escaped), and the time's second is formatted once per second."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f'{{"time": "{_timestamp(record.created)}", "level": {_quote(record.levelname)}, '
            f'"logger": {_quote(record.name)}, "message": {_quote(record.getMessage())}'
        ]
        for field in _json_fields:
            value = getattr(record, field, None)
            if value is not None:
                parts.append(f', "{field}": {_json(value)}')
        if record.exc_info:
            parts.append(f', "exc_info": {_quote(self.formatException(record.exc_info))}')
        parts.append("}")
        return "".join(parts)


def _json(value: object) -> str:
    if type(value) is str:
        return _quote(value)
    if type(value) is int:
        return str(value)
    if type(value) is float and math.isfinite(value):  # a duration: json.dumps's own repr
        return repr(value)
    return json.dumps(value, default=str)


_second: tuple[int, str] = (-1, "")


def _timestamp(created: float) -> str:
    """datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"), with the
    same rounding (datetime's own: the fraction to the microsecond, half to even), the
    second's text reused."""
    global _second
    fraction, whole = math.modf(created)
    second, micro = divmod(int(whole) * 1_000_000 + round(fraction * 1_000_000), 1_000_000)
    if _second[0] != second:
        _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second[1]}.{micro // 1000:03d}+00:00"


class ConsoleFormatter(logging.Formatter):
    """Readable lines that a client cannot break: the first line is the record, escaped;
    the message's further lines, a traceback or a stack follow on indented lines, escaped
    too."""

    def __init__(self) -> None:
        super().__init__(CONSOLE_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        text = super().formatMessage(record)
        if record.name == ACCESS_LOGGER:  # one line per request, whatever the path holds
            return escape_controls(text)
        # A message of several lines (uvicorn logs a failed startup's traceback as its message)
        # reads as they were written: the first on the record's line, the others indented
        # under it like a traceback's, so none can pass for a record of its own.
        first, *rest = text.splitlines() or [""]
        return "\n".join([escape_controls(first), *("    " + escape_controls(r) for r in rest)])

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join("    " + escape_controls(line) for line in text.splitlines())


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
            "console": {"()": ConsoleFormatter},
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
            # At DEBUG (make dev), filelock logs every poll of a lock it waits for: 20 lines a
            # second while another process migrates.
            "filelock": {"level": "INFO"},
            # Request lines come from app.access, with more detail.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }


def configure_logging(level: str, fmt: str) -> None:
    logging.config.dictConfig(logging_config(level, fmt))
