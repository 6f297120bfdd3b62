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
from app.lists.positions import MAX_KEY_LENGTH, key_between, padded, whole_part

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
    def rebalance(self) -> Update:
        """Every key of the scope becomes an integer above all its current keys, in the same
        order: one statement, and no new key can equal a key not yet rewritten."""
        t = self.table
        scope = self._scope == bindparam("scope")
        top = select(func.max(whole_part(t.c.position))).where(scope).scalar_subquery()
        ranked = (
            select(
                t.c.id, (func.row_number().over(order_by=(t.c.position, t.c.id)) + top).label("n")
            )
            .where(scope)
            .subquery()
        )
        return (
            update(t)
            .where(t.c.id == ranked.c.id)
            .values(
                position=padded(ranked.c.n), version=t.c.version + 1, updated_at=bindparam("now")
            )
        )


async def key_for_move(
    session: AsyncSession,
    order: OrderedScope,
    scope: Any,
    moving: uuid.UUID,
    after: uuid.UUID | None,
) -> str:
    """The key that puts `moving` right after `after` (None: first) in the locked scope.
    Keys that would grow past MAX_KEY_LENGTH rebalance the scope first."""
    for _ in range(2):
        key = await _key_between_neighbours(session, order, scope, moving, after)
        if len(key) <= MAX_KEY_LENGTH:
            return key
        await session.execute(order.rebalance, {"scope": scope, "now": utcnow()})
    raise RuntimeError("a rebalanced scope still has no room")  # integers always have room


async def _key_between_neighbours(
    session: AsyncSession,
    order: OrderedScope,
    scope: Any,
    moving: uuid.UUID,
    after: uuid.UUID | None,
) -> str:
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
    return key_between(before, following)


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
