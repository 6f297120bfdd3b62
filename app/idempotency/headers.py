"""What the POST routes under /api/v1/todos and /api/v1/lists declare for Idempotency-Key."""

from typing import Annotated, Any

from fastapi import Header, Request

from app.idempotency.service import Keyed

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=255,
        pattern=r"^[\x20-\x7e]+$",  # printable ASCII
        description="Retries with the same key and the same request within 24 hours return "
        "the first response and change nothing; the same key with another body (or on "
        "another route) is 422. Keys are per user.",
    ),
]

KEY_CONFLICT: dict[str, Any] = {
    "description": "Validation error; also the same Idempotency-Key sent again with another "
    "request (loc: header, Idempotency-Key)",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
    },
}


def keyed(request: Request, key: str | None) -> Keyed | None:
    return None if key is None else Keyed(key, request.method, request.url.path)
