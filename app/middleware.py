"""Pure ASGI middleware: request ids, security headers, the body size limit, the last-resort
500, and a refused startup reported in plain words.

Pure ASGI rather than BaseHTTPMiddleware: it adds no task or memory stream per request, and
it sees every response, including the ones produced by exception handlers.
"""

import json
import logging
import re
import secrets
import sys
import time
from collections.abc import Callable, Mapping

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.context import request_id_var
from app.errors import internal_error_body
from app.metrics import observe
from app.migration_guard import SchemaRefused

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("app.access")

_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")


class RequestTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body exceeds the limit of {limit} bytes")


# The docs pages may load nothing from anywhere but the app: the browser enforces the
# contract's "works with no internet" (and blocks ReDoc's hard-coded CDN logo). Inline script
# and style stay allowed: Swagger UI and ReDoc start from inline code.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'"
)


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        docs_paths: frozenset[str] = frozenset(),
        access_log: bool = True,
        body_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Smaller limits by path prefix: the routes anyone may call without an account take
        # a few hundred bytes, and every byte more is work done for nobody.
        self.body_limits = sorted((body_limits or {}).items(), key=lambda item: -len(item[0]))
        self.docs_paths = docs_paths
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or secrets.token_hex(16)
        request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        no_store = scope["path"].startswith("/api/v1")
        docs_page = scope["path"] in self.docs_paths
        started, status, start_time = False, 500, time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                headers["X-Content-Type-Options"] = "nosniff"
                # Reads a client may keep say so themselves (app.caching); nothing else may.
                if no_store and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
                if docs_page:
                    headers["Content-Security-Policy"] = DOCS_CSP
            await send(message)

        try:
            await self._serve(scope, receive, send_with_headers, lambda: started)
        finally:
            self._record(scope, request_id, status, time.perf_counter() - start_time)

    def _limit(self, path: str) -> int:
        for prefix, limit in self.body_limits:
            if path.startswith(prefix):
                return limit
        return self.max_body_bytes

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, started: Callable[[], bool]
    ) -> None:
        limit = self._limit(scope["path"])
        if _declared_length(scope) > limit:
            await _send_error(send, 413, RequestTooLarge(limit).detail)
            return
        try:
            await self.app(scope, self._limited(receive, limit), send)
        except RequestTooLarge as exc:
            # Raised while reading the body somewhere FastAPI's own handler did not see it.
            if not started():
                await _send_error(send, 413, exc.detail)
        except Exception:
            # Log the traceback server-side; the client gets the contract's body and the id
            # to quote, never a stack trace or SQL.
            logger.exception("unhandled error")
            if not started():
                await _send_json(send, 500, internal_error_body())

    def _record(self, scope: Scope, request_id: str, status: int, seconds: float) -> None:
        method = scope["method"]
        route = route_template(scope)
        observe(method, route, status, seconds)
        if not self.access_log:
            return
        duration_ms = round(seconds * 1000, 2)
        client = scope.get("client")
        access_logger.info(
            "%s %s %s %.2fms",
            method,
            scope["path"],
            status,
            duration_ms,
            extra={
                "request_id": request_id,
                "method": method,
                "route": route,
                "path": scope["path"],
                "status": status,
                "duration_ms": duration_ms,
                "client": f"{client[0]}:{client[1]}" if client else None,
            },
        )

    def _limited(self, receive: Receive, limit: int) -> Receive:
        """Count body bytes as they arrive: chunked bodies carry no Content-Length."""
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(limit)
            return message

        return limited_receive


def route_template(scope: Scope) -> str:
    """The matched route's full template (/api/v1/todos/{todo_id}), not the path: one metric
    label per endpoint, whatever the ids. Unmatched paths share one label."""
    route = scope.get("route")
    if route is None:
        # A mount (the docs' static files) records no route, but extends root_path.
        mount = scope.get("root_path", "")[len(scope.get("app_root_path", "")) :]
        return f"{mount}/{{path}}" if mount else "unmatched"
    return str(getattr(route, "path_format", None) or getattr(route, "path", "unmatched"))


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _REQUEST_ID_RE.fullmatch(candidate) else None
    return None


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def _send_error(send: Send, status: int, detail: str) -> None:
    await _send_json(send, status, {"detail": detail})


async def _send_json(send: Send, status: int, content: object) -> None:
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class PlainStartupRefusal:
    """A startup refused for a reason the message says in full (SchemaRefused: a database
    at an unknown revision, a changed migration file) is reported as that message alone.

    Starlette reports any exception leaving the lifespan to the server as its formatted
    traceback, which uvicorn and gunicorn log: a wall of frames around one sentence. This
    swaps the text of that one report; every other failure keeps its traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_plainly(message: Message) -> None:
            # Starlette sends this from inside its `except` clause: the exception being
            # handled is the one that failed the startup.
            refusal = sys.exc_info()[1]
            if message["type"] == "lifespan.startup.failed" and isinstance(refusal, SchemaRefused):
                message = {**message, "message": str(refusal)}
            await send(message)

        await self.app(scope, receive, send_plainly)
