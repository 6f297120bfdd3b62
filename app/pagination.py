"""Opaque keyset cursors: the last row's sort value and id, tied to the query that made them."""

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any

from app.errors import InvalidInput

BAD_CURSOR = "Invalid cursor: pass the next_cursor of the previous page, with the same query"


def encode_cursor(fingerprint: str, value: Any, last_id: uuid.UUID) -> str:
    payload = {"f": fingerprint, "v": value, "id": str(last_id)}
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str) -> tuple[Any, uuid.UUID]:
    """The raw JSON value and the id; the caller checks the value's type."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if payload["f"] != fingerprint:
            raise ValueError("cursor from another query")
        return payload["v"], uuid.UUID(payload["id"])
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise bad_cursor() from exc


def parse_aware(value: Any) -> datetime:
    """A cursor's timestamp: ISO 8601 with an offset, as encode_cursor's callers write it."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("naive cursor time")
    return parsed


def bad_cursor() -> InvalidInput:
    return InvalidInput(("query", "cursor"), BAD_CURSOR)
