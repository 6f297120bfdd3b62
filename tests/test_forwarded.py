"""The warning about X-Forwarded-For from a peer FORWARDED_ALLOW_IPS does not trust.

tests/runtime/test_throttle_workers.py sees it in a real gunicorn's log; here, with a clock of
our own, that it comes at most once an hour and only when it should.
"""

import asyncio
import logging

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.forwarded import UNTRUSTED_MESSAGE, UntrustedForwardedForWarning


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _request(app: UntrustedForwardedForWarning, peer: str | None, forwarded: str | None) -> None:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": headers,
        "client": (peer, 40000) if peer else None,
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 204  # the request is served all the same


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_warns_once_an_hour_about_an_untrusted_peer(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    clock = Clock()
    app = UntrustedForwardedForWarning(_ok, "127.0.0.1,10.1.0.0/16", clock=clock)
    for _ in range(3):
        _request(app, "192.0.2.10", "203.0.113.7")
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert UNTRUSTED_MESSAGE.split("%")[0] in warnings[0]
    assert "192.0.2.10" in warnings[0]
    assert "203.0.113.7" not in warnings[0]  # what the header claims is not logged

    clock.now += 3599
    _request(app, "192.0.2.11", "203.0.113.7")
    assert len(_warnings(caplog)) == 1
    clock.now += 1
    _request(app, "192.0.2.11", "203.0.113.7")
    assert len(_warnings(caplog)) == 2


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded"),
    [
        ("127.0.0.1,10.1.0.0/16", "127.0.0.1", "203.0.113.7"),  # a trusted proxy
        ("127.0.0.1,10.1.0.0/16", "10.1.200.3", "203.0.113.7"),  # inside a trusted network
        ("127.0.0.1", "192.0.2.10", None),  # no header: nothing to ignore
        ("*", "192.0.2.10", "203.0.113.7"),  # everyone is trusted
        ("127.0.0.1", None, "203.0.113.7"),  # a unix socket: uvicorn trusts it
        ("::1", "::1", "203.0.113.7"),
    ],
)
def test_no_warning_when_the_header_is_used_or_absent(
    caplog: pytest.LogCaptureFixture, trusted: str, peer: str | None, forwarded: str | None
) -> None:
    caplog.set_level(logging.WARNING)
    _request(UntrustedForwardedForWarning(_ok, trusted), peer, forwarded)
    assert _warnings(caplog) == []
