"""The HTTP edge: request-head limits that uvicorn does not enforce on its own.

gunicorn's limit_request_field_size and limit_request_fields never apply under the uvicorn
worker (uvicorn parses HTTP itself), and uvicorn's httptools parser accepts a head of any
size: one 32 MB header would be read into a worker's memory. This protocol answers 431 and
closes the connection once a request head passes 32 KiB or 100 fields, before the app runs.
"""

import json
import uuid
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from app.forwarded import UntrustedForwardedForWarning

MAX_HEAD_BYTES = 32 * 1024
MAX_HEADER_FIELDS = 100


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head, self._head_bytes, self._fields, self._refused = True, 0, 0, False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._reading_head and not self._refused:
            # The head is still incomplete after this chunk: the parser holds it all.
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head, self._head_bytes, self._fields = True, 0, 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
        if self._fields > MAX_HEADER_FIELDS or size > MAX_HEAD_BYTES:
            self._refuse()  # the request never reaches the app
            return
        self._reading_head = False
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def _refuse(self) -> None:
        self._refused = True
        body = json.dumps({"detail": "Request header fields too large"}).encode()
        head = (
            "HTTP/1.1 431 Request Header Fields Too Large\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            f"x-request-id: {uuid.uuid4().hex}\r\n"
            "x-content-type-options: nosniff\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


class TodoUvicornWorker(UvicornWorker):  # type: ignore[misc]  # uvicorn-worker ships no types
    """gunicorn's uvicorn worker, with the bounded request-head parser and the warning about
    X-Forwarded-For from an untrusted peer (app.forwarded)."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "http": BoundedHttpToolsProtocol}  # noqa: RUF012

    async def _serve(self) -> None:
        # Loaded here rather than by the server, so that the warning wraps uvicorn's
        # proxy-headers middleware: outside it, the peer is still the peer.
        self.config.app = self.wsgi
        self.config.load()
        self.config.loaded_app = UntrustedForwardedForWarning(
            self.config.loaded_app, self.cfg.forwarded_allow_ips
        )
        await super()._serve()
