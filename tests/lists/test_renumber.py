"""app.lists.renumber's plan, against a model of a scope: any crowded gap, any list size."""

import uuid

from hypothesis import given
from hypothesis import strategies as st

from app.lists import renumber
from app.lists.positions import MAX_KEY_LENGTH, key_between


def _crowded(count: int, squeeze: int, gap_at: int) -> list[str]:
    """`count` keys; the ones after gap_at are pressed `squeeze` times towards it."""
    keys = [key_between(None, None)]
    for _ in range(count - 1):
        keys.append(key_between(keys[-1], None))
    for _ in range(squeeze):
        if gap_at + 1 >= len(keys):
            break
        squeezed = key_between(keys[gap_at], keys[gap_at + 1])
        if len(squeezed) > MAX_KEY_LENGTH:
            break
        keys.insert(gap_at + 1, squeezed)
    return keys


@given(
    count=st.integers(2, 400),
    squeeze=st.integers(0, 120),
    gap=st.integers(0, 398),
    moving_at=st.none() | st.integers(0, 400),
)
def test_a_plan_keeps_order_bounds_and_never_collides(
    count: int, squeeze: int, gap: int, moving_at: int | None
) -> None:
    keys = _crowded(count, squeeze, min(gap, count - 2))
    ids = [uuid.uuid4() for _ in keys]
    moving_key = None
    if moving_at is not None and moving_at < len(keys):
        moving_key = keys.pop(moving_at)
        ids.pop(moving_at)
    split = min(gap, len(keys) - 1)  # the gap is after keys[split]
    below = list(zip(ids[: split + 1], keys[: split + 1], strict=True))[::-1]
    above = list(zip(ids[split + 1 :], keys[split + 1 :], strict=True))
    window = renumber.MAX_WINDOW + 1
    slot, rewrites = renumber.plan(below[:window], above[:window], moving_key)
    assert len(rewrites) <= 2 * renumber.MAX_WINDOW
    # Applied one by one, in the plan's order, no key is ever held twice.
    current = dict(zip(ids, keys, strict=True))
    held = set(current.values()) | ({moving_key} if moving_key else set())
    for item, key in rewrites:
        assert key not in held, key
        held.discard(current[item])
        held.add(key)
        current[item] = key
    assert slot not in held or slot == moving_key
    # The order is the old one with the slot in the gap, and every key is within bounds.
    order = sorted([*current.items(), (None, slot)], key=lambda pair: pair[1])
    assert [item for item, _ in order] == [*ids[: split + 1], None, *ids[split + 1 :]]
    assert all(0 < len(key) <= MAX_KEY_LENGTH for key in [*current.values(), slot])
