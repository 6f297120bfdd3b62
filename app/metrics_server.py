"""The metrics port: /metrics from gunicorn's master, one thread whatever the connections.

prometheus_client's start_http_server starts a thread per connection and has no timeouts: each
idle connection to the port was a thread in the master for as long as the client liked (2 ->
502 threads for 500 connections). This one is an asyncio server on one daemon thread: a
connection must send its request head within HEADER_TIMEOUT, at most MAX_CONNECTIONS are
served at once (more are closed at once), and every answer closes its connection (a scrape is
one request every few seconds).
"""

import asyncio
import threading
from collections.abc import Callable

MAX_CONNECTIONS = 32
MAX_HEAD_BYTES = 8 * 1024


class MetricsServer:
    def __init__(
        self, render: Callable[[], tuple[bytes, str]], header_timeout: float, max_connections: int
    ) -> None:
        self.render = render
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.open = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open >= self.max_connections:
            writer.close()
            return
        self.open += 1
        try:
            head = await asyncio.wait_for(self._head(reader), self.header_timeout)
            if head is not None:
                writer.write(self._answer(head))
                await asyncio.wait_for(writer.drain(), self.header_timeout)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass  # too slow, or gone: closed below, nothing to answer
        finally:
            self.open -= 1
            writer.close()

    @staticmethod
    async def _head(reader: asyncio.StreamReader) -> bytes | None:
        try:
            return await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return None  # a head over the reader's limit: not a scrape

    def _answer(self, head: bytes) -> bytes:
        method, _, rest = head.partition(b" ")
        path = rest.partition(b" ")[0].partition(b"?")[0]
        if method not in (b"GET", b"HEAD") or path != b"/metrics":
            return _response(b"404 Not Found", b"Not Found\n", "text/plain; charset=utf-8")
        body, content_type = self.render()
        return _response(b"200 OK", b"" if method == b"HEAD" else body, content_type)


def _response(status: bytes, body: bytes, content_type: str) -> bytes:
    head = (
        b"HTTP/1.1 " + status + b"\r\n"
        b"content-type: " + content_type.encode() + b"\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n"
    )
    return head + body


def start(
    host: str,
    port: int,
    render: Callable[[], tuple[bytes, str]],
    header_timeout: float,
    max_connections: int = MAX_CONNECTIONS,
) -> None:
    """Serve on (host, port) from a daemon thread; returns once the port is listening, and
    raises if it cannot be bound (as start_http_server did)."""
    server = MetricsServer(render, header_timeout, max_connections)
    loop = asyncio.new_event_loop()
    listening = loop.run_until_complete(
        asyncio.start_server(server.handle, host, port, limit=MAX_HEAD_BYTES)
    )
    thread = threading.Thread(
        target=_run, args=(loop, listening), name="metrics-server", daemon=True
    )
    thread.start()


def _run(loop: asyncio.AbstractEventLoop, listening: asyncio.Server) -> None:
    asyncio.set_event_loop(loop)
    loop.run_until_complete(listening.serve_forever())
