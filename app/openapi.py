"""What /openapi.json says beyond what FastAPI derives from the routes: operation ids named
after the operation, and the X-Request-ID every operation takes and every response carries."""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

REQUEST_ID = "X-Request-ID"
_REQUEST_ID_HEADER = {
    "description": "The request's id: the client's own (1-128 letters, digits, - _ .) or a "
    "new one. Quote it when reporting a problem.",
    "required": True,
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,128}$"},
}
# The same header on the way in: a client may send its own, to find its request in the logs.
_REQUEST_ID_PARAMETER = {
    "name": REQUEST_ID,
    "in": "header",
    "required": False,
    "description": "The client's own id for this request: 1-128 letters, digits, - _ or . "
    "are echoed in the response's X-Request-ID and the logs; anything else is replaced by a new "
    "one (never refused)",
    # Any string: one outside the pattern is replaced, not refused; a pattern here would promise
    # clients (and schemathesis' negative checks) a 4xx the server never sends.
    "schema": {"type": "string"},
}
ETAG = {
    "ETag": {
        "description": "The todo's version, a strong validator: send it back in If-Match "
        "(writes) or If-None-Match (reads)",
        "required": True,
        "schema": {"type": "string", "example": '"3"'},
    }
}


def operation_id(route: APIRoute) -> str:
    """The route function's own name (create_todo, list_todos, login): what generated
    clients call the operation."""
    return route.name


def install(app: FastAPI) -> None:
    """Declare X-Request-ID on every operation and every response of it, once, as components."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _declare_request_id(build())
        assert app.openapi_schema is not None  # noqa: S101 - build() caches it
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _declare_request_id(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    components.setdefault("headers", {})[REQUEST_ID] = _REQUEST_ID_HEADER
    components.setdefault("parameters", {})[REQUEST_ID] = _REQUEST_ID_PARAMETER
    ref = {"$ref": f"#/components/headers/{REQUEST_ID}"}
    parameter = {"$ref": f"#/components/parameters/{REQUEST_ID}"}
    for operations in schema["paths"].values():
        for operation in operations.values():
            operation.setdefault("parameters", []).append(parameter)
            for response in operation["responses"].values():
                response.setdefault("headers", {})[REQUEST_ID] = ref
