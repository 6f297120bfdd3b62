"""Domain errors raised by services, and the handlers that turn them into the contract's bodies."""

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.context import request_id_var
from app.validation import MAX_REPORTED_ERRORS

logger = logging.getLogger(__name__)


def internal_error_body() -> dict[str, str]:
    """The contract's 500: no stack trace, no SQL, only the request id to quote."""
    return {"detail": "Internal Server Error", "request_id": request_id_var.get()}


class AppError(Exception):
    status_code: ClassVar[int] = 500
    detail: str = "Internal Server Error"

    def __init__(self, detail: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        self.detail = detail or type(self).detail
        self.headers = headers
        super().__init__(self.detail)


class BadRequest(AppError):
    status_code = 400
    detail = "Bad request"


class Unauthorized(AppError):
    status_code = 401
    detail = "Could not validate credentials"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, {"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status_code = 403
    detail = "Not enough privileges"


class NotFound(AppError):
    status_code = 404
    detail = "Not found"


class Conflict(AppError):
    status_code = 409
    detail = "Conflict"


class Gone(AppError):
    status_code = 410
    detail = "Gone"


class PreconditionFailed(AppError):
    status_code = 412
    detail = "The resource has changed; fetch it again and retry"


class TooManyRequests(AppError):
    status_code = 429
    detail = "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail, {"Retry-After": str(max(1, retry_after))})


class ServiceUnavailable(AppError):
    """Overloaded right now: the client may retry after Retry-After seconds."""

    status_code = 503
    detail = "Service busy, try again shortly"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail, {"Retry-After": str(max(1, retry_after))})


class InvalidInput(AppError):
    """A 422 raised by a service, in the same shape as FastAPI's request validation errors."""

    status_code = 422

    def __init__(self, loc: Sequence[str | int], msg: str, type_: str = "value_error") -> None:
        super().__init__(msg)
        self.errors = [{"loc": list(loc), "msg": msg, "type": type_}]


class ErrorBody(BaseModel):
    detail: str


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
_RESPONSES: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("The request cannot be carried out as sent", {}),
    401: (
        "Missing, invalid, expired or revoked credentials",
        {
            "WWW-Authenticate": {
                "description": "The scheme to authenticate with: always `Bearer` (an access "
                "token from POST /api/v1/auth/token in `Authorization: Bearer <token>`)",
                "required": True,
                "schema": {"type": "string", "enum": ["Bearer"]},
            }
        },
    ),
    403: ("Authenticated, but not allowed", {}),
    404: ("No such resource (or not yours)", {}),
    409: ("Conflicts with existing data", {}),
    410: ("Too old: no longer available", {}),
    412: ("If-Match does not match the current ETag", {}),
    413: ("Request body over the size limit", {}),
    429: ("Throttled: too many failed logins, or past the rate limit", _RETRY_AFTER),
    503: ("Database unavailable (or, where passwords are hashed, too many waiting)", _RETRY_AFTER),
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the contract's error statuses, so clients and docs know them."""
    return {
        code: {
            "model": ErrorBody,
            "description": _RESPONSES[code][0],
            "headers": _RESPONSES[code][1],
        }
        for code in codes
    }


def _json(status: int, content: Any, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=content, headers=dict(headers or {}))


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    if isinstance(exc, InvalidInput):
        return _json(exc.status_code, {"detail": exc.errors})
    return _json(exc.status_code, {"detail": exc.detail}, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only loc/msg/type: FastAPI's default also echoes the rejected `input`, which for the
    # auth routes would put a password back into the response body. At most 20: unknown keys
    # last, so that a body full of them cannot crowd out a missing or invalid field.
    found = sorted(exc.errors(), key=lambda e: e["type"] == "extra_forbidden")
    errors = [
        {"loc": e["loc"], "msg": e["msg"], "type": e["type"]} for e in found[:MAX_REPORTED_ERRORS]
    ]
    return _json(422, {"detail": errors})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        # Starlette lists the methods of the first route whose path matched; the resource
        # supports those of every route with this path (app.routing).
        path = request.scope["path"].removeprefix(request.scope.get("root_path", ""))
        allow = request.app.state.methods.allowed(path)
        return _json(405, {"detail": exc.detail}, {**(exc.headers or {}), "Allow": allow})
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI answers 400 when a body cannot even be decoded (invalid UTF-8, a broken
        # form); the contract makes every unreadable body a validation error.
        error = {"loc": ["body"], "msg": "The request body could not be parsed", "type": "body"}
        return _json(422, {"detail": [error]})
    return _json(exc.status_code, {"detail": exc.detail}, exc.headers)


async def _integrity_error(_: Request, exc: Exception) -> JSONResponse:
    # Services map the conflicts they expect; this catches a unique violation that only
    # surfaced at commit, which is still a conflict and never a 500.
    logger.warning("integrity error surfaced at commit: %s", type(exc).__name__)
    return _json(409, {"detail": "Conflict with the current state of the resource"})


# SQLSTATE classes that mean "not now" rather than "never": connection exceptions (08),
# transaction rollbacks such as deadlocks (40), insufficient resources such as too many
# connections (53), operator intervention such as a statement timeout or a shutdown (57).
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57"})
# And a lock not granted within LOCK_TIMEOUT_MS (lock_not_available): busy, not broken.
_TRANSIENT_SQLSTATES = frozenset({"55P03"})


def _is_transient(exc: DBAPIError) -> bool:
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
        return True
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    return isinstance(code, str) and (
        code[:2] in _TRANSIENT_SQLSTATE_CLASSES or code in _TRANSIENT_SQLSTATES
    )


async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    # Unreachable, restarting, timed out, or no free connection: the client may retry.
    code = getattr(getattr(exc, "orig", None), "pgcode", None)
    sqlstate = f" (SQLSTATE {code})" if code else ""
    logger.error("database unavailable: %s%s", type(exc).__name__, sqlstate)
    return _json(503, {"detail": "Database unavailable, try again shortly"}, {"Retry-After": "1"})


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if _is_transient(exc):
        return await _database_unavailable(request, exc)
    # A bug, not an outage: logged with its traceback (statement, never its parameters:
    # the engines hide them), answered as the contract's 500.
    logger.error("database error", exc_info=exc)
    return _json(500, internal_error_body())


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DBAPIError, _database_error)
    # asyncpg raises socket errors (refused, reset, unresolvable host) and its own timeouts
    # unwrapped; the only sockets a request opens are the database's.
    for unavailable in (PoolTimeout, OSError, TimeoutError):
        app.add_exception_handler(unavailable, _database_unavailable)
