"""The feed's statements: a keyset page of a user's changes joined to the objects they name.

The triggers only record that an object changed (app.changes.service explains the stamps);
the page reads each change's object as GET reads it, in the same statement (one snapshot), and
app.changes.service writes the JSON with the very models GET uses.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Delete,
    Select,
    String,
    bindparam,
    cast,
    delete,
    func,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import Label

from app.accounts import access
from app.actor import Actor
from app.changes.models import Change, ChangeClock
from app.lists import fields as list_fields
from app.pagination import after_params, keyset_after
from app.todos import fields as todo_fields


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """One change: the object's latest state (None when it is deleted, or not found)."""

    kind: str
    object_id: uuid.UUID
    deleted: bool
    txid: int
    item: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class PageRows:
    rows: Sequence[ChangeRow]
    watermark: int | None  # read by a pass's first page, when it found anything
    # PostgreSQL: that page's snapshot, (xmax, in-progress ids): what the pass saw, so that a
    # later pass can tell a change it repeats from one committed since (app.changes.waiting).
    snapshot: tuple[int, tuple[int, ...]] | None = None


def _watermark(dialect: str) -> ColumnElement[int]:
    if dialect == "postgresql":
        xmin = func.pg_snapshot_xmin(func.pg_current_snapshot())
        return cast(cast(xmin, String), BigInteger)
    clock = select(ChangeClock.value).where(ChangeClock.id == 1).scalar_subquery()
    return func.coalesce(clock, 0) + 1


# The object's columns: a todo's fields, then a list's own; a field both have (id, position,
# the timestamps) is one column, whichever table the row joined (fewer values to convert).
_NAMES = (*todo_fields.READ, *(n for n in list_fields.READ if n not in todo_fields.READ))
_OBJECT_COLUMNS = [
    func.coalesce(todo_fields.C[name], list_fields.C[name]).label(f"o_{name}")
    if name in todo_fields.C and name in list_fields.C and name in list_fields.READ
    else (todo_fields.C[name] if name in todo_fields.READ else list_fields.C[name]).label(
        f"o_{name}"
    )
    for name in _NAMES
]
# Where each kind's fields are in a row (after kind, object_id, deleted, txid).
_TODO_AT = tuple(4 + _NAMES.index(name) for name in todo_fields.READ)
_LIST_AT = tuple(4 + _NAMES.index(name) for name in list_fields.READ)
_ORDER = (Change.txid, Change.object_id)


@lru_cache(maxsize=16)  # per engine's dialect: a statement for a first page and one for the rest
def _page_statement(dialect: Dialect, first_page: bool) -> Select[*tuple[Any, ...]]:
    """A keyset page of the changes in feed order, each with its object's columns (a deleted
    one has none). The watermark comes from the very statement that reads a pass's first page."""
    todos, lists = todo_fields.TABLE, list_fields.TABLE
    watermark: list[Label[Any]] = (
        [_watermark(dialect.name).label("watermark")] if first_page else []
    )
    if first_page and dialect.name == "postgresql":  # as text: "xmin:xmax:xip,xip,..."
        watermark.append(cast(func.pg_current_snapshot(), String).label("snapshot"))
    stmt = (
        select(
            Change.kind,
            Change.object_id,
            Change.deleted,
            Change.txid,
            *_OBJECT_COLUMNS,
            *watermark,
        )
        .select_from(Change)
        .outerjoin(todos, (Change.kind == "todo") & (todos.c.id == Change.object_id))
        .outerjoin(lists, (Change.kind == "list") & (lists.c.id == Change.object_id))
        .where(
            Change.owner_id == bindparam("user_id"),
            access.ADMITTED,
            Change.txid >= bindparam("since"),
        )
        .order_by(*_ORDER)
        .limit(bindparam("limit"))
    )
    if not first_page:
        stmt = stmt.where(keyset_after(_ORDER))
    return stmt


_TODO_READ, _LIST_READ = todo_fields.READ, list_fields.READ


async def page(
    session: AsyncSession,
    actor: Actor,
    since: int,
    after: tuple[int, uuid.UUID] | None,
    limit: int,
) -> PageRows:
    """Up to `limit` changes with txid >= since (after `after`, in a pass's later pages)."""
    params: dict[str, Any] = {**actor.params(), "since": since, "limit": limit}
    first_page = after is None
    if after is not None:
        params.update(after_params(after))
    dialect = session.get_bind().dialect
    # On the connection: the session's ORM result handling would cost every row a few calls.
    result = await (await session.connection()).execute(
        _page_statement(dialect, first_page), params
    )
    rows = result.all()
    changes = []
    for row in rows:  # by position: a Row's attributes cost a lookup each
        kind, object_id, deleted, txid = row[0], row[1], row[2], row[3]
        item: dict[str, Any] | None = None
        if not deleted:
            names, at = (_TODO_READ, _TODO_AT) if kind == "todo" else (_LIST_READ, _LIST_AT)
            if row[at[0]] is not None:  # found (always, but for a bug: see the service)
                item = {name: row[i] for name, i in zip(names, at, strict=True)}
        changes.append(ChangeRow(kind, object_id, deleted, txid, item))
    watermark = rows[0].watermark if first_page and rows else None
    snapshot = None
    if watermark is not None and dialect.name == "postgresql":
        snapshot = _snapshot(rows[0].snapshot)
    return PageRows(changes, watermark, snapshot)


# A snapshot with more transactions in progress than this is not kept (the token stays short):
# a later pass then treats everything at or above the watermark as new, as the feed always has.
_MOST_IN_PROGRESS = 32  # ids of up to 10 digits: the token stays far under 1024 characters


def _snapshot(text: str) -> tuple[int, tuple[int, ...]] | None:
    _xmin, xmax, xip = text.split(":")
    running = tuple(int(x) for x in xip.split(",") if x)
    return None if len(running) > _MOST_IN_PROGRESS else (int(xmax), running)


# Tombstones outlive the retention by a day: a token issued just inside the retention must
# still find the tombstones of transactions that were running when it was issued.
PURGE_MARGIN = timedelta(days=1)
PURGE_BATCH = 500  # app.purge's batch


def expired_tombstones(retention: timedelta, now: datetime) -> Delete:
    """A batch of tombstones older than the retention (and its margin): app.purge runs it
    with the other clean-ups, in every worker, in the background."""
    old = (
        select(Change.object_id)
        .where(Change.deleted, Change.changed_at < now - retention - PURGE_MARGIN)
        .limit(PURGE_BATCH)
    )
    return delete(Change).where(Change.object_id.in_(old.scalar_subquery()))


# The SQLite poll (app.changes.notifications): the clock every recorded change increments, and
# which of the waiting users have a change stamped after a clock value. Not under the access
# rule: it hands out nothing, it only says whom to wake, and the woken request's page is read
# under it.
_CLOCK = select(ChangeClock.value).where(ChangeClock.id == 1)
_CHANGED_OWNERS = (
    select(Change.owner_id)
    .where(
        Change.owner_id.in_(bindparam("owners", expanding=True)),
        Change.txid > bindparam("after"),
    )
    .distinct()
)


async def change_clock(session: AsyncSession) -> int:
    """SQLite: the change clock's value (0 before any change)."""
    return (await session.scalar(_CLOCK)) or 0


async def owners_changed_after(
    session: AsyncSession, owners: Sequence[uuid.UUID], after: int
) -> Sequence[uuid.UUID]:
    """SQLite: which of `owners` have a change stamped after clock value `after`."""
    result = await session.scalars(_CHANGED_OWNERS, {"owners": list(owners), "after": after})
    return result.all()
