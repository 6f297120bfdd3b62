"""Opaque keyset cursors: the last row's sort value and id, tied to the query that made them."""

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, bindparam, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from app.errors import InvalidInput
from app.validation import as_utc, reject_nul

T = TypeVar("T")
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
        return storable(payload["v"]), uuid.UUID(payload["id"])
    # RecursionError: JSON nested deeper than the parser's stack (a cursor of "[[[[...").
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise bad_cursor() from exc


def storable(value: T) -> T:
    """`value` if every string in it can be a database parameter, else ValueError. JSON's
    escapes let a forged cursor carry a lone surrogate (\\ud800), which no driver can encode
    as UTF-8, or NUL, which PostgreSQL text cannot hold: both were 500s from the driver."""
    if isinstance(value, str):
        reject_nul(value)
        value.encode()  # UnicodeEncodeError, a ValueError, for a lone surrogate
    elif isinstance(value, list):
        for item in value:
            storable(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            storable(key)
            storable(item)
    return value


def parse_aware(value: Any) -> datetime:
    """A cursor's timestamp: ISO 8601 with an offset, as encode_cursor's callers write it."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("naive cursor time")
    # Cursors come back from clients: one made up with an offset past year 9999 in UTC would
    # overflow in the driver (a 500) instead of being a bad cursor (ValueError).
    return as_utc(parsed)


def keyset_after(
    columns: Sequence[ColumnElement[Any] | InstrumentedAttribute[Any]], *, descending: bool = False
) -> ColumnElement[bool]:
    """Rows strictly after the cursor row in the order of `columns` (all in one direction):
    one row-value comparison, which an index on those columns serves as a range scan. The
    cursor row's values are parameters (after_params), so the statement can be built once."""
    key = tuple_(*columns)
    bound = tuple_(*(bindparam(f"after_{i}", type_=c.type) for i, c in enumerate(columns)))
    return key < bound if descending else key > bound


def after_params(values: Sequence[Any]) -> dict[str, Any]:
    """The parameters of keyset_after for a cursor row with these values."""
    return {f"after_{i}": value for i, value in enumerate(values)}


def split_page(rows: Sequence[T], limit: int) -> tuple[Sequence[T], T | None]:
    """Rows fetched with limit + 1: the page, and its last row when another page follows."""
    page = rows[:limit]
    return page, page[-1] if len(rows) > limit else None


def bad_cursor() -> InvalidInput:
    return InvalidInput(("query", "cursor"), BAD_CURSOR)
