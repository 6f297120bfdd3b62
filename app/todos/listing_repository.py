"""Todos' statements for reading many: a keyset page of the list, and the counts (stats)."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Row, Select, and_, bindparam, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import access
from app.actor import Actor
from app.pagination import after_params, split_page
from app.todos import fields
from app.todos.filters import FILTERS
from app.todos.models import due_at
from app.todos.pagination import DUE_KEY, SortOrder
from app.todos.schemas import TodoRead

_C = fields.C
_READ_ALL = TypeAdapter(list[TodoRead])  # a page of rows in one call
# The actor's todos, while its user may act. Parameters: Actor.params().
_OWNED = (_C.owner_id == bindparam("user_id"), access.ADMITTED)


@lru_cache(maxsize=1024)  # every shape there is: 64 filter sets x 12 orders x 3 cursor kinds
def list_statement(
    sort: str, null_tail: bool | None, filters: frozenset[str]
) -> Select[*tuple[Any, ...]]:
    order = SortOrder.parse(sort)
    # By due: the sort value too, for the cursor (an all-day todo has no due_date).
    extra = [due_at.label(DUE_KEY)] if order.field == "due_date" else []
    stmt = select(*fields.READ_COLUMNS, *extra).where(
        *_OWNED, *(FILTERS[name] for name in sorted(filters))
    )
    if null_tail is not None:
        stmt = stmt.where(order.after(null_tail))
    return stmt.order_by(*order.order_by()).limit(bindparam("limit"))


@dataclass(frozen=True, slots=True)
class TodoPageRows:
    items: list[TodoRead]
    last: Row[Any] | None  # the page's last row as stored, when another page follows


async def page(
    session: AsyncSession,
    actor: Actor,
    sort: str,
    filters: dict[str, Any],
    after: tuple[Any, uuid.UUID] | None,
    limit: int,
) -> TodoPageRows:
    """Up to `limit` todos in `sort` order, after the cursor's (value, id) when there is one;
    `filters` are app.todos.filters' parameters."""
    # One more than the page: whether it is there tells whether another page follows.
    params = {**actor.params(), "limit": limit + 1, **filters}
    null_tail: bool | None = None  # no cursor
    if after is not None:
        null_tail = after[0] is None
        params.update(after_params(after))
    stmt = list_statement(sort, null_tail, frozenset(filters))
    result = await session.execute(stmt, params)
    columns = tuple(result.keys())
    rows, last = split_page(result.all(), limit)
    # Plain dicts, not the rows themselves: pydantic reads a Row field by field through
    # getattr, which cost three times the validation itself (a tenth of a list request's CPU).
    items = _READ_ALL.validate_python([dict(zip(columns, row, strict=True)) for row in rows])
    return TodoPageRows(items, last)


@dataclass(frozen=True, slots=True)
class Counts:
    admitted: bool
    total: int
    completed: int
    overdue: int


_OPEN = _C.completed.is_(False)
_NOW = bindparam("now", type_=_C.due_date.type)
# Past its due: an all-day todo once its day is over in its zone (the next day has started
# there), any other once its due_date has passed (ADR 0401).
_PAST_DUE = or_(_C.due_day_ends_at <= _NOW, and_(_C.due_day_ends_at.is_(None), _C.due_date < _NOW))
_STATS = select(
    access.ADMITTED,
    func.count(),
    func.coalesce(func.sum(case((_C.completed, 1), else_=0)), 0),
    func.coalesce(func.sum(case((_OPEN & _PAST_DUE, 1), else_=0)), 0),
).where(_C.owner_id == bindparam("user_id"))


async def counts(session: AsyncSession, actor: Actor, now: datetime) -> Counts:
    row = (await session.execute(_STATS, {**actor.params(), "now": now})).one()
    return Counts(bool(row[0]), row[1], row[2], row[3])
