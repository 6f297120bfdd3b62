"""Log lines cannot be forged: what a client sends never starts a line of its own.

The access log writes the decoded request path; a %0a in it used to end the real line and
start a forged one. Both formats are checked with the app's own configuration
(app.logs.logging_config), on records the real middleware writes.
"""

import io
import json
import logging
import logging.config
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from app.config import Settings
from app.logs import ACCESS_LOGGER, REQUEST_FIELDS, JsonFormatter, logging_config
from app.main import create_app
from app.migrations import ROOT
from tests.conftest import TEST_SECRET
from tests.isolation import free_port

FORGED = "1999-12-31 23:59:59,999 INFO    [app.access] [-] POST /api/v1/users/me/password 204"
# Everything that ends a line or rewrites one on a terminal or in a log viewer.
BREAKERS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1b[2K\r", "\x85", "\u2028", "\u2029", "\x00"]


def _handler(fmt: str) -> tuple[logging.Handler, io.StringIO]:
    """A handler with the formatter and filters LOG_FORMAT=fmt configures, into a buffer."""
    config = logging_config("INFO", fmt)
    configurator = logging.config.DictConfigurator(config)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configurator.configure_formatter(dict(config["formatters"][fmt])))
    for spec in config["filters"].values():
        handler.addFilter(configurator.configure_filter(dict(spec)))
    return handler, stream


@pytest.fixture(params=["console", "json"])
def access_log(request: pytest.FixtureRequest) -> Iterator[tuple[str, io.StringIO]]:
    handler, stream = _handler(request.param)
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield request.param, stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.mark.parametrize("breaker", BREAKERS, ids=repr)
def test_a_request_path_cannot_forge_an_access_log_line(
    client: TestClient, access_log: tuple[str, io.StringIO], breaker: str
) -> None:
    fmt, stream = access_log
    path = f"/x{breaker}{FORGED}"
    response = client.get("/x" + "".join(f"%{b:02X}" for b in (breaker + FORGED).encode()))
    assert response.status_code == 404

    output = stream.getvalue()
    lines = output.splitlines()  # splits on every breaker above, as viewers may
    assert len(lines) == 1, output
    assert not any(line.startswith(FORGED[:10]) for line in lines)
    if fmt == "json":
        record = json.loads(output)
        assert record["path"] == path  # the exact bytes survive, escaped by JSON
        assert path in record["message"]
    else:
        assert FORGED in output  # still readable, on the real line
        assert all(c.isprintable() for c in output.rstrip("\n")), repr(output)


def test_every_field_of_a_json_record_is_escaped() -> None:
    handler, stream = _handler("json")
    evil = "a\nb\rc\x1bd\u2028e\x85f"
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 1, evil, None, None)
    for field in ("request_id", "method", "route", "path", "client"):
        setattr(record, field, evil)
    handler.handle(record)
    output = stream.getvalue()
    assert len(output.splitlines()) == 1
    assert output.isascii()
    parsed = json.loads(output)
    assert {parsed[f] for f in ("message", "request_id", "method", "route", "path", "client")} == {
        evil
    }


def test_a_traceback_cannot_forge_a_console_line() -> None:
    # An exception's message may carry client input (a driver's error quoting a value).
    handler, stream = _handler("console")
    try:
        raise ValueError(f"bad value\n{FORGED}\r\x1b[2K")
    except ValueError:
        record = logging.LogRecord(
            "app.errors", logging.ERROR, __file__, 1, "database error", None, sys.exc_info()
        )
    handler.handle(record)
    first, *rest = stream.getvalue().splitlines()
    assert first.endswith("database error")
    assert rest, "the traceback is kept"
    assert all(line.startswith(" ") for line in rest), rest  # continuation lines, indented
    assert any("Traceback (most recent call last):" in line for line in rest)
    assert all(c.isprintable() for line in rest for c in line)


def test_access_log_false_writes_no_request_lines_and_keeps_the_metrics(
    settings: Settings, access_log: tuple[str, io.StringIO]
) -> None:
    """ACCESS_LOG=false (a deployment that logs at its ingress): no line per request, while
    /metrics still counts every request and errors are still logged."""
    _fmt, stream = access_log
    quiet = settings.model_copy(update={"access_log": False})
    with TestClient(create_app(quiet)) as client:
        for _ in range(3):
            assert client.get("/health").status_code == 200
        metrics = client.get("/metrics").text
    assert stream.getvalue() == ""
    assert 'http_requests_total{method="GET",route="/health",status="200"}' in metrics


def test_the_access_log_is_on_by_default(
    client: TestClient, access_log: tuple[str, io.StringIO]
) -> None:
    fmt, stream = access_log
    assert client.get("/health").status_code == 200
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "/health" in lines[0]
    if fmt == "json":
        record = json.loads(stream.getvalue())
        assert (record["method"], record["route"], record["status"]) == ("GET", "/health", 200)
        assert len(record["request_id"]) == 32


_JSON_VALUES = st.one_of(
    st.none(), st.text(), st.integers(), st.floats(), st.booleans(), st.uuids()
)


@settings_(max_examples=300, deadline=None)
@given(
    message=st.text(),
    args=st.lists(st.one_of(st.text(), st.integers(), st.floats()), max_size=3),
    fields=st.fixed_dictionaries({}, optional=dict.fromkeys(REQUEST_FIELDS, _JSON_VALUES)),
    created=st.floats(min_value=0, max_value=4e9),
    name=st.text(min_size=1),
)
def test_a_json_line_is_what_json_dumps_writes(
    message: str, args: list[object], fields: dict[str, object], created: float, name: str
) -> None:
    """The JSON formatter writes its lines by hand (a request's line is on every request's
    path): they must be exactly json.dumps's, field for field, whatever a record holds."""
    message = message.replace("%", "%%") + " %s" * len(args)
    record = logging.LogRecord(name, logging.WARNING, __file__, 1, message, tuple(args), None)
    record.created = created
    for field, value in fields.items():
        setattr(record, field, value)
    expected: dict[str, object] = {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": "WARNING",
        "logger": name,
        "message": record.getMessage(),
    }
    expected |= {f: fields[f] for f in REQUEST_FIELDS if fields.get(f) is not None}

    line = JsonFormatter().format(record)

    assert line == json.dumps(expected, default=str)


@pytest.mark.parametrize(
    "created", [0.0, 212541627.9999995, 190023368.4999995, 1764518400.0005, 4e9 - 0.0000005]
)
def test_a_json_line_rounds_its_time_as_datetime_does(created: float) -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.created = created

    time = json.loads(JsonFormatter().format(record))["time"]

    assert time == datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


def _traceback_text() -> str:
    try:
        raise RuntimeError("the lifespan failed")
    except RuntimeError:
        return traceback.format_exc()


def test_a_traceback_logged_as_a_message_reads_as_a_traceback_in_the_console() -> None:
    """uvicorn logs a failed startup's traceback as the *message* of a record (Starlette hands
    it over as text): the console showed it as one line full of literal \\n."""
    handler, stream = _handler("console")
    text = _traceback_text()
    record = logging.LogRecord(
        "uvicorn.error", logging.ERROR, __file__, 1, f"{text}{FORGED}\r\x1b[2K", None, None
    )
    handler.handle(record)
    output = stream.getvalue()
    first, *rest = output.splitlines()
    assert first.endswith("[uvicorn.error] [-] Traceback (most recent call last):")
    assert all(line.startswith("    ") for line in rest), rest  # continuation lines, indented
    assert rest[-3:] == ["    RuntimeError: the lifespan failed", f"    {FORGED}", "    \\x1b[2K"]
    assert len(rest) == len(text.splitlines()) + 1  # one line per line; \r ends one too
    assert "\\n" not in output
    assert all(c.isprintable() for line in rest for c in line)


def test_a_traceback_logged_as_a_message_stays_one_json_line() -> None:
    handler, stream = _handler("json")
    text = _traceback_text()
    handler.handle(logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, text, None, None))
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == text


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_a_failed_startup_logs_a_real_traceback(tmp_path: Path, log_format: str) -> None:
    """The real server, failing at startup: uvicorn as `make run` and `make dev` start it."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env |= {
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "MIGRATION_LOCK_PATH": str(tmp_path / "m.lock"),
        "SECRET_KEY": TEST_SECRET,
        "ENVIRONMENT": "production",
        "RESET_DB": "1",  # refused in production: a RuntimeError out of the lifespan
        "LOG_FORMAT": log_format,
    }
    result = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    if log_format == "json":
        records = [json.loads(line) for line in result.stdout.splitlines()]
        failure = next(r["message"] for r in records if "Traceback" in r["message"])
        assert "RuntimeError: RESET_DB is refused" in failure
        return
    lines = result.stdout.splitlines()
    assert any(line.endswith("] Traceback (most recent call last):") for line in lines)
    assert any(line.startswith("    RuntimeError: RESET_DB is refused") for line in lines)
    assert "\\n" not in result.stdout
