"""Placing lists and todos: the statements shared by both (a list's lists, a list's todos).

An ordered scope is a table and the column whose value groups its items (lists: owner_id;
todos: list_id). Moves run in a transaction that first locks the scope (the caller's job), so
two moves into one scope never pick the same gap; appends run as one statement without the
lock, and the scope's unique (scope, position) constraint turns a collision between them into
an IntegrityError that place() retries under the lock.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

from sqlalchemy import Column, Select, Table, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Update

from app.database import transaction, utcnow
from app.errors import Conflict, InvalidInput
from app.lists import renumber
from app.lists.positions import MAX_KEY_LENGTH, key_between

T = TypeVar("T")
# A placement collides only with appends that ran while it held its lock; each retry runs
# under the lock, so a handful always suffices in practice.
PLACEMENT_ATTEMPTS = 8


@dataclass(frozen=True)
class OrderedScope:
    table: Table
    scope: str  # the grouping column's name

    @property
    def _scope(self) -> Column[Any]:
        return self.table.c[self.scope]

    @cached_property
    def after_item(self) -> Select[str]:
        """The position of `after` (an id) in the scope."""
        t = self.table
        return select(t.c.position).where(
            t.c.id == bindparam("after"), self._scope == bindparam("scope")
        )

    @cached_property
    def first_beyond(self) -> Select[str | None]:
        """The smallest position above `before`, other than the moving item's."""
        t = self.table
        return select(func.min(t.c.position)).where(
            self._scope == bindparam("scope"),
            t.c.position > bindparam("before"),
            t.c.id != bindparam("moving"),
        )

    @cached_property
    def first(self) -> Select[str | None]:
        t = self.table
        return select(func.min(t.c.position)).where(
            self._scope == bindparam("scope"), t.c.id != bindparam("moving")
        )

    @cached_property
    def at_or_below(self) -> Select[tuple[Any, str]]:
        """The items at or before `before`, nearest first: one side of a gap's window."""
        t = self.table
        return (
            select(t.c.id, t.c.position)
            .where(
                self._scope == bindparam("scope"),
                t.c.position <= bindparam("before"),
                t.c.id != bindparam("moving"),
            )
            .order_by(t.c.position.desc())
            .limit(renumber.MAX_WINDOW + 1)
        )

    @cached_property
    def at_or_above(self) -> Select[tuple[Any, str]]:
        """The items at or after `following`, nearest first: the gap's other side."""
        t = self.table
        return (
            select(t.c.id, t.c.position)
            .where(
                self._scope == bindparam("scope"),
                t.c.position >= bindparam("following"),
                t.c.id != bindparam("moving"),
            )
            .order_by(t.c.position)
            .limit(renumber.MAX_WINDOW + 1)
        )

    @cached_property
    def position_of(self) -> Select[str]:
        t = self.table
        return select(t.c.position).where(t.c.id == bindparam("moving"))

    @cached_property
    def renumber(self) -> Update:
        """One item's new key (executemany: a window's, in renumber's safe order)."""
        t = self.table
        return (
            update(t)
            .where(t.c.id == bindparam("item"))
            .values(position=bindparam("key"), version=t.c.version + 1, updated_at=bindparam("now"))
        )


async def key_for_move(
    session: AsyncSession,
    order: OrderedScope,
    scope: Any,
    moving: uuid.UUID,
    after: uuid.UUID | None,
) -> str:
    """The key that puts `moving` right after `after` (None: first) in the locked scope.
    A gap with no key of at most MAX_KEY_LENGTH left is renumbered around (app.lists.renumber):
    bounded work, whatever the list's size."""
    before, following = await _neighbours(session, order, scope, moving, after)
    key = key_between(before, following)
    if len(key) <= MAX_KEY_LENGTH:
        return key
    if following is None:  # the end of a list: the next integer, always short
        raise RuntimeError("a key after the last item cannot be too long")
    return await _renumber_around(session, order, scope, moving, before, following)


async def _renumber_around(
    session: AsyncSession,
    order: OrderedScope,
    scope: Any,
    moving: uuid.UUID,
    before: str | None,
    following: str,
) -> str:
    params = {"scope": scope, "moving": moving, "before": before, "following": following}
    below: list[Any] = []
    if before is not None:
        below = list((await session.execute(order.at_or_below, params)).all())
    above = list((await session.execute(order.at_or_above, params)).all())
    moving_key = (await session.execute(order.position_of, params)).scalar()
    slot, rewrites = renumber.plan(
        [(row.id, row.position) for row in below],
        [(row.id, row.position) for row in above],
        moving_key,
    )
    if rewrites:
        await session.execute(order.renumber, renumber.rewrite_params(rewrites, utcnow()))
    return slot


async def _neighbours(
    session: AsyncSession,
    order: OrderedScope,
    scope: Any,
    moving: uuid.UUID,
    after: uuid.UUID | None,
) -> tuple[str | None, str | None]:
    before: str | None = None
    if after is None:
        following = (
            await session.execute(order.first, {"scope": scope, "moving": moving})
        ).scalar()
    else:
        if after == moving:
            raise InvalidInput(("body", "after"), "An item cannot be placed after itself")
        before = (
            await session.execute(order.after_item, {"after": after, "scope": scope})
        ).scalar()
        if before is None:
            raise InvalidInput(("body", "after"), "`after` must be an item of the same list")
        params = {"scope": scope, "before": before, "moving": moving}
        following = (await session.execute(order.first_beyond, params)).scalar()
    return before, following


async def place(
    session: AsyncSession,
    optimistic: Callable[[], Awaitable[T]] | None,
    locked: Callable[[], Awaitable[T]],
) -> T:
    """Run `optimistic` (one statement, no lock) if given; when it collides on a position,
    or without it, run `locked` in a transaction (it takes the scope's lock first), again
    while it collides with a concurrent append."""
    if optimistic is not None:
        try:
            return await optimistic()
        except IntegrityError:
            await session.rollback()
    for _ in range(PLACEMENT_ATTEMPTS):
        try:
            async with transaction(session):
                return await locked()
        except IntegrityError:
            await session.rollback()
    raise Conflict("The list is busy; try again")


async def place_nested(
    session: AsyncSession,
    append: Callable[[], Awaitable[T]] | None,
    append_locked: Callable[[], Awaitable[T]],
) -> T:
    """A placement inside a caller's transaction (without `append`, a move: always under the
    lock): a collision undoes only its savepoint, and the next attempts take the list's lock
    first (as place does). Without that
    fallback, contended keyed creates collided with each other until their retries ran out
    (issue 29: 13 of 300 got 409); under the lock they queue, and only an unlocked append
    that lands in between (and then itself retries under the lock) can collide again."""
    attempt = append_locked if append is None else append
    for _ in range(PLACEMENT_ATTEMPTS):
        try:
            async with session.begin_nested():
                return await attempt()
        except IntegrityError:
            attempt = append_locked
    raise Conflict("The list is busy; try again")
