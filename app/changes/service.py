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
`since` — W as read by the very statement that read the pass's FIRST page (the same
snapshot). A pass whose first page finds nothing hands back its own `since` instead.

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
that is 410, and older tombstones are purged a bounded batch at a time (app.purge). The
account's own deletion removes its rows (a trigger on users; the recording triggers write
nothing for an owner that is gone), and its tokens' user no longer exists: 401.
"""

import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
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
from app.changes.tokens import ChangeTokens, FeedPosition
from app.database import dialect_name
from app.errors import Gone
from app.lists.models import TodoList
from app.lists.schemas import ListRead
from app.pagination import after_params, keyset_after, split_page
from app.todos.models import Priority, Todo
from app.todos.schemas import TodoRead

EXPIRED = "This since is older than the change history kept: start again without since"
# Tombstones outlive the retention by a day: a token issued just inside the retention must
# still find the tombstones of transactions that were running when it was issued.
PURGE_MARGIN = timedelta(days=1)
PURGE_BATCH = 500  # app.purge's batch

# A page row: kind, object_id, deleted, txid, then the object's columns: those lists and todos
# share (one column each, from whichever the change is about), the list's own, the todo's own.
_SHARED = ("position", "created_at", "updated_at")
_LIST_OWN = tuple(name for name in ListRead.model_fields if name not in ("id", *_SHARED))
_TODO_OWN = tuple(name for name in TodoRead.model_fields if name not in ("id", *_SHARED))
_LIST_KEYS = ("id", *_SHARED, *_LIST_OWN)
_TODO_KEYS = ("id", *_SHARED, *_TODO_OWN)
_SHARED_COLUMNS = slice(4, 4 + len(_SHARED))
_LIST_COLUMNS = slice(_SHARED_COLUMNS.stop, _SHARED_COLUMNS.stop + len(_LIST_OWN))
_TODO_COLUMNS = slice(_LIST_COLUMNS.stop, _LIST_COLUMNS.stop + len(_TODO_OWN))
_PRIORITY_NAMES = {rank.value: rank.name for rank in Priority}


def _watermark(dialect: str) -> ColumnElement[int]:
    if dialect == "postgresql":
        xmin = func.pg_snapshot_xmin(func.pg_current_snapshot())
        return cast(cast(xmin, String), BigInteger)
    clock = select(ChangeClock.value).where(ChangeClock.id == 1).scalar_subquery()
    return func.coalesce(clock, 0) + 1


@lru_cache(maxsize=8)
def _page_statement(dialect: str, first_page: bool) -> Select[*tuple[Any, ...]]:
    columns: list[Any] = [Change.kind, Change.object_id, Change.deleted, Change.txid]
    columns += [
        func.coalesce(getattr(Todo, name), getattr(TodoList, name)).label(name) for name in _SHARED
    ]
    columns += [getattr(TodoList, name).label(f"l_{name}") for name in _LIST_OWN]
    columns += [getattr(Todo, name).label(f"t_{name}") for name in _TODO_OWN]
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


async def feed(
    session: AsyncSession,
    claims: AccessClaims,
    tokens: ChangeTokens,
    since: str | None,
    limit: int,
    retention: timedelta,
) -> dict[str, Any]:
    """A page of the feed as the response's JSON object (ChangePage's shape)."""
    now = int(time.time())
    # From nothing: the client needs no tombstone, so nothing it needs can have been purged.
    position = FeedPosition(0, now) if since is None else tokens.decode(since, claims.user_id)
    if since is not None and position.since_at < now - retention.total_seconds():
        raise Gone(EXPIRED)
    dialect = dialect_name(session)
    params = {**access.params(claims), "since": position.since, "limit": limit + 1}
    if position.after is not None:
        params.update(after_params(position.after))
    stmt = _page_statement(dialect, position.starts_a_pass)
    rows = (await session.execute(stmt, params)).all()
    if not rows:
        await access.authorize(session, claims)
    if position.starts_a_pass:
        # Found nothing: `since` stays the watermark. One read by a statement of its own,
        # after the page's, could pass a transaction that committed in between, unseen (the
        # guarantee test caught exactly that).
        position = replace(position, mark=rows[0].watermark if rows else position.since)
        position = replace(position, mark_at=now)
    page, last = split_page(rows, limit)
    following = _following(position, None if last is None else (last.txid, last.object_id))
    return {
        "changes": [_change(row) for row in page],
        "next_token": tokens.encode(following, claims.user_id),
        "has_more": last is not None,
    }


def _following(position: FeedPosition, last: tuple[int, uuid.UUID] | None) -> FeedPosition:
    """Where the next call goes on: further in this pass, or (its end) a new pass from the
    watermark its first page took."""
    if last is not None:
        return replace(position, after=last)
    return FeedPosition(since=position.mark or 0, since_at=position.mark_at or 0)


def _change(row: Any) -> dict[str, Any]:
    """A change as the response's JSON object, straight from the row: a page is up to 1000
    of them, and building a model of each cost more than the query (bench: changes)."""
    # Ids as text here: asyncpg's own UUID objects take pydantic's slow path when dumped.
    kind, object_id = row[0], str(row[1])
    shared = row[_SHARED_COLUMNS]
    if shared[0] is None:  # the list or todo is gone
        return {"type": kind, "id": object_id, "deleted": True, "item": None}
    if kind == "list":
        item = dict(zip(_LIST_KEYS, (object_id, *shared, *row[_LIST_COLUMNS]), strict=True))
    else:
        item = dict(zip(_TODO_KEYS, (object_id, *shared, *row[_TODO_COLUMNS]), strict=True))
        item["priority"] = _PRIORITY_NAMES[item["priority"]]
        item["list_id"] = str(item["list_id"])
    return {"type": kind, "id": object_id, "deleted": False, "item": item}


def expired_tombstones(retention: timedelta, now: datetime) -> Delete:
    """A batch of tombstones older than the retention (and its margin): app.purge runs it
    with the other clean-ups, in every worker, in the background."""
    old = (
        select(Change.object_id)
        .where(Change.deleted, Change.changed_at < now - retention - PURGE_MARGIN)
        .limit(PURGE_BATCH)
    )
    return delete(Change).where(Change.object_id.in_(old.scalar_subquery()))
