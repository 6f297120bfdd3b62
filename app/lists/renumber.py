"""Renumbering around a gap: the bounded repair for a gap that has run out of keys.

Moving an item between two neighbours halves their gap; a run of moves into one gap (issue
29: alternating moves, about 88 of them) leaves no key of at most MAX_KEY_LENGTH between
them. The list is then renumbered *around the gap*, never as a whole: the few items on each
side of it are spread evenly over the span between the first item outside them on either
side (or 0 and the integers past the list's end). The window starts at WINDOWS[0] items a
side and doubles until the spread leaves room for SPARSE_DIGITS more halvings, up to
WINDOWS[-1]: a request rewrites at most 2 * WINDOWS[-1] rows whatever the list's size, and a
gap repaired this way takes another ~36 moves into it before it needs repair again.

Why here, inside the move, and not a background renumbering: the work is a few dozen rows
under the list's lock the move holds anyway, so there is no second writer to coordinate, no
queue to run and watch, and no window in which a list waits for its repair. A statement
timeout during it rolls the move back (503) and nothing retries it: the next move into the
gap does the same bounded work again, not a larger one.

Keys are rewritten in an order in which no new key ever equals a key still in place (items
moving down in ascending order, then items moving up in descending order), so the unique
(scope, position) constraint, checked row by row, holds throughout one executemany.
"""

import uuid
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from app.errors import Conflict
from app.lists.positions import INTEGER_DIGITS, MAX_KEY_LENGTH, parse, render

FRACTION_DIGITS = MAX_KEY_LENGTH - INTEGER_DIGITS
# A repaired gap keeps keys this short, so half the digits are left for moves into it.
SPARSE_DIGITS = FRACTION_DIGITS // 2
# Items on each side of the gap, tried in turn: the last one bounds a request's work.
WINDOWS = (4, 16, 64)
MAX_WINDOW = WINDOWS[-1]
NO_ROOM = "This part of the list is too crowded to place an item here; place it elsewhere"


def plan(
    below: Sequence[tuple[uuid.UUID, str]],
    above: Sequence[tuple[uuid.UUID, str]],
    moving_key: str | None,
) -> tuple[str, list[tuple[uuid.UUID, str]]]:
    """The moving item's key and the (id, new key) rewrites, in a safe order.

    `below`: the items at or before the gap, nearest first (up to MAX_WINDOW + 1); `above`:
    those after it, nearest first (the same). `moving_key`: the moving item's current key,
    which stays in place until the move writes it, so no rewrite may take it."""
    fallback = None
    for size in WINDOWS:
        planned = _spread(below, above, moving_key, size)
        if planned is not None:
            slot, keys, items, sparse = planned
            if sparse:
                return slot, _ordered(items, keys)
            fallback = fallback or (slot, _ordered(items, keys))
    if fallback is not None:  # room, if not much: the best there is within bounded work
        return fallback
    raise Conflict(NO_ROOM)  # MAX_WINDOW items a side crammed into too small a span


def _spread(
    below: Sequence[tuple[uuid.UUID, str]],
    above: Sequence[tuple[uuid.UUID, str]],
    moving_key: str | None,
    size: int,
) -> tuple[str, list[str], list[tuple[uuid.UUID, str]], bool] | None:
    """Keys for `size` items a side and the slot between them, spread evenly over the span
    around them; whether they leave SPARSE_DIGITS of room; None if they do not fit at all."""
    lower, upper = list(reversed(below[:size])), list(above[:size])
    low = parse(below[size][1]) if len(below) > size else Decimal(0)
    high = parse(above[size][1]) if len(above) > size else None
    count = len(lower) + 1 + len(upper)  # the moving item's slot among them
    with localcontext() as context:
        context.prec = 2 * MAX_KEY_LENGTH  # keys carry 32 digits; the default keeps 28
        if high is None:  # the window reaches the list's end: whole numbers past `low`
            start, step, digits = Decimal(int(low)), Decimal(1), 0
        else:
            start, step = low, (high - low) / (count + 1)
            # Rounding to `digits` moves a key by at most a quarter step: order and bounds hold.
            fits = (d for d in range(FRACTION_DIGITS + 1) if Decimal(2).scaleb(-d) <= step)
            digits = next(fits, FRACTION_DIGITS + 1)
        keys = _keys(start, step, digits, count)
        if moving_key is not None and moving_key in keys:
            # Another item would take the moving item's current key: shift every key by one
            # more digit, ending in 1 (which no key of `digits` fraction digits does).
            digits += 1
            keys = [render(parse(key) + Decimal(1).scaleb(-digits)) for key in keys]
    if digits > FRACTION_DIGITS:
        return None
    slot = keys[len(lower)]
    return slot, keys[: len(lower)] + keys[len(lower) + 1 :], lower + upper, digits <= SPARSE_DIGITS


def _keys(start: Decimal, step: Decimal, digits: int, count: int) -> list[str]:
    unit = Decimal(1).scaleb(-digits)
    return [
        render((start + step * i).quantize(unit, rounding=ROUND_HALF_UP))
        for i in range(1, count + 1)
    ]


def _ordered(items: list[tuple[uuid.UUID, str]], keys: list[str]) -> list[tuple[uuid.UUID, str]]:
    """Rewrites that never collide with a key not yet rewritten: with both sequences in
    order, an item moving down can only land on the old key of an item before it that also
    moves down (so: ascending), and symmetrically for items moving up (descending)."""
    down = [(item_id, new) for (item_id, old), new in zip(items, keys, strict=True) if new < old]
    up = [(item_id, new) for (item_id, old), new in zip(items, keys, strict=True) if new > old]
    return down + up[::-1]


def rewrite_params(rewrites: list[tuple[uuid.UUID, str]], now: Any) -> list[dict[str, Any]]:
    return [{"item": item_id, "key": key, "now": now} for item_id, key in rewrites]
