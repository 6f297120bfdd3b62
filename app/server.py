"""The HTTP edge: request-head limits, deadlines and a connection cap that uvicorn lacks.

gunicorn's limit_request_field_size and limit_request_fields never apply under the uvicorn
worker (uvicorn parses HTTP itself), and uvicorn's httptools parser accepts a head of any
size: one 32 MB header would be read into a worker's memory. This protocol answers 431 and
closes the connection once a request head passes 32 KiB or 100 fields, before the app runs.

uvicorn has no read deadline at all (its only timer is the keep-alive one, between requests):
an idle or half-sent head, or a body stalled after a few bytes, held a connection for as long
as the client liked. Here the head must be complete within HEADER_TIMEOUT of the connection
(or, on a kept-alive one, of the request's first byte) and the body within BODY_TIMEOUT of the
head: totals, not per read, so that trickling a byte at a time does not reset them. Past
either the connection is closed.

Past MAX_CONNECTIONS open connections in a worker, a new request is answered 503 (the
contract's JSON, Retry-After) and its connection closed. uvicorn's own limit_concurrency is
not used: uvicorn-worker never passes it (gunicorn's worker_connections is ignored), it counts
the connection asking (the Nth, not the N+1st, is refused), and its 503 is plain text.
"""

import asyncio
import json
import socket
import sys
import uuid
from typing import Any

from gunicorn.arbiter import Arbiter  # type: ignore[import-untyped]
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from app import stopping
from app.config import get_settings
from app.forwarded import UntrustedForwardedForWarning

MAX_HEAD_BYTES = 32 * 1024
MAX_HEADER_FIELDS = 100


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head, self._head_bytes, self._fields, self._refused = True, 0, 0, False
        self._deadline: asyncio.TimerHandle | None = None
        # The process's settings (cached), as the app's: under gunicorn and `uvicorn --http`.
        settings = get_settings()
        self.header_timeout = settings.header_timeout
        self.body_timeout = settings.body_timeout
        self.max_connections = settings.max_connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expire_after(self.header_timeout)  # a client that connects and sends nothing

    def connection_lost(self, exc: Exception | None) -> None:
        self._clear_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._reading_head and not self._refused:
            # The head is still incomplete after this chunk: the parser holds it all.
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(
                    431, "Request Header Fields Too Large", "Request header fields too large"
                )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head, self._head_bytes, self._fields = True, 0, 0
        if self._deadline is None:  # a kept-alive connection's next request
            self._expire_after(self.header_timeout)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
        if self._fields > MAX_HEADER_FIELDS or size > MAX_HEAD_BYTES:
            # The request never reaches the app.
            self._refuse(431, "Request Header Fields Too Large", "Request header fields too large")
            return
        if len(self.connections) > self.max_connections:  # this one included
            self._refuse(503, "Service Unavailable", "Too many connections, try again shortly")
            return
        self._reading_head = False
        self._expire_after(self.body_timeout)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._clear_deadline()
        if not self._refused:
            super().on_message_complete()

    def _expire_after(self, seconds: float) -> None:
        self._clear_deadline()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _clear_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        # Too slow to send its head or its body: disconnected, without an answer (a handler
        # waiting for the body sees the client leave, as if it had).
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, reason: str, detail: str) -> None:
        self._refused = True
        self._clear_deadline()
        body = json.dumps({"detail": detail}).encode()
        retry = "retry-after: 1\r\n" if status == 503 else ""
        head = (
            f"HTTP/1.1 {status} {reason}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            f"x-request-id: {uuid.uuid4().hex}\r\n"
            "x-content-type-options: nosniff\r\n"
            f"{retry}"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


class TodoUvicornWorker(UvicornWorker):  # type: ignore[misc]  # uvicorn-worker ships no types
    """gunicorn's uvicorn worker, with the bounded protocol, no `Server` header (it only tells
    an attacker what to look up; uvicorn still sends `date`) and the warning about
    X-Forwarded-For from an untrusted peer (app.forwarded)."""

    CONFIG_KWARGS = {  # noqa: RUF012
        **UvicornWorker.CONFIG_KWARGS,
        "http": BoundedHttpToolsProtocol,
        "server_header": False,
    }

    async def _serve(self) -> None:
        # Loaded here rather than by the server, so that the warning wraps uvicorn's
        # proxy-headers middleware: outside it, the peer is still the peer.
        self.config.app = self.wsgi
        self.config.load()
        self.config.loaded_app = UntrustedForwardedForWarning(
            self.config.loaded_app, self.cfg.forwarded_allow_ips
        )
        # UvicornWorker._serve, with the server below.
        server = StoppingServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)


class StoppingServer(Server):
    """uvicorn's server, telling the app it stops before it waits for requests in flight
    (app.stopping): waiting feed requests answer then, not after GRACEFUL_TIMEOUT."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        stopping.begin()
        await super().shutdown(sockets)
