"""What /openapi.json says beyond what FastAPI derives from the routes: operation ids named
after the operation, the X-Request-ID every operation takes and every response carries,
and the headers a response may carry (the rate limits' fields, under the limited prefix)."""

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
# API.md "Rate limits (v1.2)": on every response under the limited prefix, except when the
# limits are off or their storage cannot be reached (then the request is served without them).
_RATE_LIMIT_HEADERS = {
    "RateLimit-Policy": {
        "description": "The quota this request counted against, as draft-ietf-httpapi-"
        'ratelimit-headers-11 writes it: `"user"` (a valid access token) or `"address"`, '
        "`q` requests per `w` seconds (the limit closest to refusing). Absent when rate "
        "limits are off or their storage cannot be reached.",
        "required": False,
        "schema": {
            "type": "string",
            "pattern": r'^"(user|address)";q=[0-9]+;w=[0-9]+$',
            "example": '"user";q=1200;w=60',
        },
    },
    "RateLimit": {
        "description": "What is left of that quota: `r` requests, and `t` seconds until it "
        "is back (draft-ietf-httpapi-ratelimit-headers-11). Past the limit (429) `r` is 0 "
        "and Retry-After says when to try again. Absent when RateLimit-Policy is.",
        "required": False,
        "schema": {
            "type": "string",
            "pattern": r'^"(user|address)";r=[0-9]+;t=[0-9]+$',
            "example": '"user";r=1187;t=42',
        },
    },
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


def install(app: FastAPI, rate_limited: str) -> None:
    """Declare X-Request-ID on every operation and every response of it, and the rate limits'
    fields on every response of those under the `rate_limited` prefix, once, as components."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _declare_request_id(schema)
            _declare(schema, _RATE_LIMIT_HEADERS, rate_limited)
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


def _declare(schema: dict[str, Any], headers: dict[str, Any], prefix: str) -> None:
    schema.setdefault("components", {}).setdefault("headers", {}).update(headers)
    for path, operations in schema["paths"].items():
        if path.startswith(prefix):
            for operation in operations.values():
                for response in operation["responses"].values():
                    found = response.setdefault("headers", {})
                    for name in headers:
                        found[name] = {"$ref": f"#/components/headers/{name}"}
