"""Positions: opaque strings whose byte-wise order is the user's order.

A key is a decimal number written as a fixed-width, zero-padded integer part of INTEGER_DIGITS
digits followed by the digits of its fraction, without a point and without trailing zeros
("0000000003", "00000000035" = 3.5). Fixed width makes byte order equal numeric order, and no
trailing zeros makes every number one key. Placing an item between two neighbours picks a
short number strictly between theirs, so no neighbour is ever renumbered; appending takes the
next integer after the last key, which SQL can compute inside the INSERT itself
(next_position). A run of inserts into one gap lengthens keys by about a digit every three
inserts; once a key would exceed MAX_KEY_LENGTH the few items around that gap are
renumbered (app.lists.renumber), never the whole list.
"""

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, String, cast, func
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

INTEGER_DIGITS = 10
MAX_KEY_LENGTH = 32
FIRST = "1".zfill(INTEGER_DIGITS)


def parse(key: str) -> Decimal:
    return Decimal(f"{key[:INTEGER_DIGITS]}.{key[INTEGER_DIGITS:] or '0'}")


def render(value: Decimal) -> str:
    whole, _, fraction = f"{value:f}".partition(".")
    return whole.zfill(INTEGER_DIGITS) + fraction.rstrip("0")


def key_after(last: str | None) -> str:
    """The key for the end of a list whose last key is `last`: the next integer."""
    return FIRST if last is None else render(Decimal(int(last[:INTEGER_DIGITS]) + 1))


def key_between(before: str | None, after: str | None) -> str:
    """A key strictly between two neighbours (None: the list's start or end).

    The midpoint rounded to as few fraction digits as still fall strictly inside, so keys
    grow only as fast as the gaps shrink. Nothing sorts before 0, and no key is ever 0."""
    if after is None:
        return key_after(before)
    low, high = parse(before) if before is not None else Decimal(0), parse(after)
    if low >= high:
        raise ValueError("neighbours out of order")
    middle = (low + high) / 2
    digits = 0
    while True:
        candidate = middle.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
        if low < candidate < high:
            return render(candidate)
        digits += 1


class padded(FunctionElement[str]):  # noqa: N801 - reads as the SQL function it is
    """SQL: a positive integer as a key (render(Decimal(n)))."""

    type = String()
    inherit_cache = True


@compiles(padded, "postgresql")
def _padded_pg(element: padded, compiler: Any, **kw: Any) -> str:
    (number,) = element.clauses
    return compiler.process(func.lpad(cast(number, String), INTEGER_DIGITS, "0"), **kw)  # type: ignore[no-any-return]


@compiles(padded, "sqlite")
def _padded_sqlite(element: padded, compiler: Any, **kw: Any) -> str:
    (number,) = element.clauses
    return compiler.process(func.printf(f"%0{INTEGER_DIGITS}d", number), **kw)  # type: ignore[no-any-return]


def whole_part(key: ColumnElement[str]) -> ColumnElement[int]:
    """SQL: a key's integer part (NULL for NULL)."""
    return cast(func.substr(key, 1, INTEGER_DIGITS), BigInteger)


def next_position(last: ColumnElement[str]) -> ColumnElement[str]:
    """SQL: key_after(last), where `last` is a list's max(position), NULL when it is empty.
    Computed inside the INSERT or UPDATE that places the item: one statement, and the
    unique constraint on the list's positions arbitrates concurrent appends."""
    return padded(func.coalesce(whole_part(last), 0) + 1)
