"""The change feed: every change to a user's lists and todos since a token, never one missed.

What records a change. Triggers on lists and todos (AFTER INSERT, UPDATE, DELETE; see the lists
migration) upsert one row per object into `changes`: its owner, whether it is deleted now, and
a stamp `txid` written inside the very transaction that made the change. Triggers, not the
app's code, so cascades (deleting a list deletes its todos) and writers that know nothing of
the feed (the release before this one, a hand-run script) are recorded too. A row holds only
the object's latest state: the feed joins the current list or todo to it.

How a token maps to "since". A feed read takes a watermark W with this property: every
transaction that can still commit a change has a stamp >= W, and everything with a smaller
stamp that ever commits is already visible. A pass delivers the rows with txid >= since in
(txid, object_id) order, a keyset page at a time, and its last page hands back W as the next
`since` — W as taken by the pass's FIRST page, whose rows then were all visible.

Why nothing is missed. Take a change committed by transaction X with stamp x, and a client
whose pass started with `since` = s and took watermark W. If X committed before the first
page, its row was visible with stamp x >= s (or an earlier pass delivered it), and the pass
walks past every visible row: it is delivered, unless a later transaction Y rewrote the row
meanwhile — then Y's state, the newer one, is what the client needs, and Y committed after
the first page, so its stamp y >= W and the next pass delivers it. If X commits after the
first page, x >= W by the property, so the next pass delivers it. Either way the client ends
with every object's latest state; an object may come twice (a rewrite moved it ahead of the
keyset), which is harmless: the later state wins.

Where W comes from. PostgreSQL: txid is the writing transaction's id (pg_current_xact_id,
64-bit, never wraps), and W = xmin of the read's own snapshot: every transaction with a
smaller id had finished when the snapshot was taken, so none of them can commit later. A
transaction that began early (low id) and commits late has an id >= W of every read taken
before it committed — exactly the case that "updated_at > since" feeds lose for ever, since
the timestamp it took at the start is older than what a poll in between already saw.
SQLite: one writer at a time, from its first write to its commit. The triggers bump a one-row
counter (change_clock) and stamp with it, so stamps increase in commit order, and W = counter
+ 1 read in the same statement as the first page: every later commit stamps above it.

Deletions are tombstones (deleted = true), kept CHANGES_RETENTION_DAYS; a token older than
that is 410, and older tombstones are purged a bounded batch at a time on feed reads. The
account's own deletion removes its rows (a trigger on users; the recording triggers write
nothing for an owner that is gone), and its tokens' user no longer exists: 401.
"""

import random
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Delete,
    Select,
    String,
    and_,
    bindparam,
    cast,
    delete,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import access
from app.auth.security import AccessClaims
from app.changes.models import Change, ChangeClock
from app.changes.schemas import ChangePage, ChangeRead
from app.changes.tokens import ChangeTokens, FeedPosition
from app.database import dialect_name, utcnow
from app.errors import Gone, Unauthorized
from app.lists.models import TodoList
from app.lists.schemas import ListRead
from app.pagination import after_params, keyset_after, split_page
from app.todos.models import Todo
from app.todos.schemas import TodoRead

EXPIRED = "This since is older than the change history kept: start again without since"
# Tombstones outlive the retention by a day: a token issued just inside the retention must
# still find the tombstones of transactions that were running when it was issued.
PURGE_MARGIN = timedelta(days=1)
PURGE_BATCH = 500
PURGE_CHANCE = 1 / 64  # of feed reads, each purging at most PURGE_BATCH tombstones

_LIST_FIELDS = ("name", "position", "is_default", "created_at", "updated_at")
_TODO_FIELDS = tuple(name for name in TodoRead.model_fields if name != "id")  # title ... position


def _watermark(dialect: str) -> ColumnElement[int]:
    if dialect == "postgresql":
        xmin = func.pg_snapshot_xmin(func.pg_current_snapshot())
        return cast(cast(xmin, String), BigInteger)
    clock = select(ChangeClock.value).where(ChangeClock.id == 1).scalar_subquery()
    return func.coalesce(clock, 0) + 1


@lru_cache(maxsize=8)
def _page_statement(dialect: str, first_page: bool) -> Select[*tuple[Any, ...]]:
    columns: list[Any] = [Change.kind, Change.object_id, Change.deleted, Change.txid]
    columns += [getattr(TodoList, name).label(f"l_{name}") for name in _LIST_FIELDS]
    columns += [getattr(Todo, name).label(f"t_{name}") for name in _TODO_FIELDS]
    if first_page:  # the pass's watermark, from the snapshot this page is read in
        columns.append(_watermark(dialect).label("watermark"))
    stmt = (
        select(*columns)
        .select_from(Change)
        .outerjoin(TodoList, and_(Change.kind == "list", TodoList.id == Change.object_id))
        .outerjoin(Todo, and_(Change.kind == "todo", Todo.id == Change.object_id))
        .where(
            Change.owner_id == bindparam("user_id"),
            access.ADMITTED,
            Change.txid >= bindparam("since"),
        )
    )
    if not first_page:
        stmt = stmt.where(keyset_after((Change.txid, Change.object_id)))
    return stmt.order_by(Change.txid, Change.object_id).limit(bindparam("limit"))


@lru_cache(maxsize=2)
def _empty_pass_statement(dialect: str) -> Select[int, bool]:
    return select(_watermark(dialect), access.ADMITTED)


async def feed(
    session: AsyncSession,
    claims: AccessClaims,
    tokens: ChangeTokens,
    since: str | None,
    limit: int,
    retention: timedelta,
) -> ChangePage:
    now = int(time.time())
    # From nothing: the client needs no tombstone, so nothing it needs can have been purged.
    position = FeedPosition(0, now) if since is None else tokens.decode(since, claims.user_id)
    if since is not None and position.since_at < now - retention.total_seconds():
        raise Gone(EXPIRED)
    dialect = dialect_name(session)
    params = {**access.params(claims), "since": position.since, "limit": limit + 1}
    if position.after is not None:
        params.update(after_params(position.after))
    rows = (await session.execute(_page_statement(dialect, position.starts_a_pass), params)).all()
    if position.starts_a_pass:
        watermark = rows[0].watermark if rows else await _empty_pass(session, claims)
        position = replace(position, mark=watermark, mark_at=now)
    elif not rows:
        await access.authorize(session, claims)
    if random.random() < PURGE_CHANCE:  # noqa: S311 - spreading work, not security
        await purge_tombstones(session, retention)
    page, last = split_page(rows, limit)
    following = _following(position, None if last is None else (last.txid, last.object_id))
    return ChangePage(
        changes=[_change(row) for row in page],
        next_token=tokens.encode(following, claims.user_id),
        has_more=last is not None,
    )


def _following(position: FeedPosition, last: tuple[int, uuid.UUID] | None) -> FeedPosition:
    """Where the next call goes on: further in this pass, or (its end) a new pass from the
    watermark its first page took."""
    if last is not None:
        return replace(position, after=last)
    return FeedPosition(since=position.mark or 0, since_at=position.mark_at or 0)


async def _empty_pass(session: AsyncSession, claims: AccessClaims) -> int:
    stmt = _empty_pass_statement(dialect_name(session))
    watermark, admitted = (await session.execute(stmt, access.params(claims))).one()
    if not admitted:
        raise Unauthorized()
    return int(watermark)


def _change(row: Any) -> ChangeRead:
    item: ListRead | TodoRead | None = None
    if row.kind == "list" and row.l_name is not None:
        fields = {name: getattr(row, f"l_{name}") for name in _LIST_FIELDS}
        item = ListRead.model_validate({"id": row.object_id, **fields})
    elif row.kind == "todo" and row.t_title is not None:
        fields = {name: getattr(row, f"t_{name}") for name in _TODO_FIELDS}
        item = TodoRead.model_validate({"id": row.object_id, **fields})
    return ChangeRead(type=row.kind, id=row.object_id, deleted=item is None, item=item)


def _purge_statement() -> Delete:
    old = (
        select(Change.object_id)
        .where(Change.deleted, Change.changed_at < bindparam("cutoff"))
        .limit(PURGE_BATCH)
    )
    return delete(Change).where(Change.object_id.in_(old.scalar_subquery()))


_PURGE = _purge_statement()


async def purge_tombstones(session: AsyncSession, retention: timedelta) -> int:
    """Forget up to PURGE_BATCH tombstones older than the retention (and its margin)."""
    cutoff = utcnow() - retention - PURGE_MARGIN
    result = await session.execute(_PURGE, {"cutoff": cutoff})
    return int(getattr(result, "rowcount", 0) or 0)
