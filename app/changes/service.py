"""The change feed: every change to a user's lists and todos since a token, never one missed.

What records a change. Triggers on lists and todos (AFTER INSERT, UPDATE, DELETE; see the lists
migration) upsert one row per object into `changes`: its owner, whether it is deleted now, and
a stamp `txid` written inside the very transaction that made the change. Triggers, not the
app's code, so cascades (deleting a list deletes its todos) and writers that know nothing of
the feed (the release before this one, a hand-run script) are recorded too. A row holds only
the object's latest state: the feed item's JSON (a tombstone's, once it is deleted), which the
trigger writes in the same transaction (app.changes.documents). A page reads those rows alone.

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
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import Subquery

from app.accounts import access
from app.accounts.security import AccessClaims
from app.changes.models import Change, ChangeClock
from app.changes.tokens import ChangeTokens, FeedPosition
from app.errors import Gone
from app.pagination import after_params, keyset_after, split_page

EXPIRED = "This since is older than the change history kept: start again without since"
# Tombstones outlive the retention by a day: a token issued just inside the retention must
# still find the tombstones of transactions that were running when it was issued.
PURGE_MARGIN = timedelta(days=1)
PURGE_BATCH = 500  # app.purge's batch


def _watermark(dialect: str) -> ColumnElement[int]:
    if dialect == "postgresql":
        xmin = func.pg_snapshot_xmin(func.pg_current_snapshot())
        return cast(cast(xmin, String), BigInteger)
    clock = select(ChangeClock.value).where(ChangeClock.id == 1).scalar_subquery()
    return func.coalesce(clock, 0) + 1


class UnwrittenChange(RuntimeError):
    """The database wrote no JSON for a change that is on the page (app.changes.documents
    met a value it cannot write): a 500, never a page without it or with a false tombstone."""


_UNWRITTEN_TEXT = "\x01"  # JSON writes it escaped, never as itself
_UNWRITTEN_SQL = literal_column("chr(1)", String())


@dataclass(frozen=True, slots=True)
class _Page:
    documents: str  # the page's changes as JSON texts, comma-separated, in feed order
    found: int  # rows read: the page's, and one more when another page follows
    last: tuple[int, uuid.UUID] | None  # the page's last (txid, object_id), when one follows
    watermark: int | None  # on a pass's first page that found anything


@lru_cache(maxsize=16)  # per engine's dialect: a statement for a first page and one for the rest
def _page_statement(dialect: Dialect, first_page: bool) -> Select[*tuple[Any, ...]]:
    """A page: the changes (a keyset page of them, in feed order), each the JSON text its
    trigger wrote (app.changes.documents). PostgreSQL folds the page into one row of _Page's
    fields (_aggregated): one value to receive instead of a row per change. SQLite returns a
    row per change: it has no aggregate that keeps an order before 3.44 (group_concat's ORDER
    BY), and its feed is not the one that has to be fast. The watermark comes from the very
    statement that reads a pass's first page."""
    order = (Change.txid, Change.object_id)
    changes = (
        select(
            Change.document,
            Change.object_id,
            Change.txid,
            func.row_number().over(order_by=order).label("n"),
        )
        .where(
            Change.owner_id == bindparam("user_id"),
            access.ADMITTED,
            Change.txid >= bindparam("since"),
        )
        .order_by(*order)
        .limit(bindparam("limit"))
    )
    if not first_page:
        changes = changes.where(keyset_after(order))
    page = changes.subquery("page")
    watermark = [_watermark(dialect.name).label("watermark")] if first_page else []
    if dialect.name == "postgresql":
        return _aggregated(page, watermark).select_from(page)
    columns = [
        page.c.document,
        page.c.txid,
        cast(page.c.object_id, String).label("object_id"),
        *watermark,
    ]
    return select(*columns).select_from(page).order_by(page.c.n)


def _aggregated(page: Subquery, watermark: list[Any]) -> Select[*tuple[Any, ...]]:
    """PostgreSQL: a page as one row of _Page's fields. Parameter page_size: the page's size
    (the changes are read with one more, which tells whether another page follows)."""
    on_page, last = page.c.n <= bindparam("page_size"), page.c.n == bindparam("page_size")
    in_order: aggregate_order_by[str] = aggregate_order_by(literal_column("','"), page.c.n)
    return select(
        # string_agg would skip a NULL document unseen; a second aggregate over the document
        # would write every document twice. A control character the JSON texts never hold
        # raw marks its place instead.
        func.string_agg(func.coalesce(page.c.document, _UNWRITTEN_SQL), in_order)
        .filter(on_page)
        .label("documents"),
        func.count().label("found"),
        func.max(page.c.txid).filter(last).label("txid"),
        func.max(cast(page.c.object_id, String)).filter(last).label("object_id"),
        *watermark,
    )


def _page_of_aggregate(row: Any, limit: int, first_page: bool) -> _Page:
    if row.documents is not None and _UNWRITTEN_TEXT in row.documents:
        raise UnwrittenChange()
    return _Page(
        row.documents or "",
        row.found,
        (row.txid, uuid.UUID(row.object_id)) if row.found > limit else None,
        row.watermark if first_page and row.found else None,
    )


def _page_of_rows(rows: Sequence[Any], limit: int, first_page: bool) -> _Page:
    page, last = split_page(rows, limit)
    if any(row.document is None for row in page):
        raise UnwrittenChange()
    return _Page(
        ",".join([row.document for row in page]),
        len(rows),
        None if last is None else (last.txid, uuid.UUID(last.object_id)),
        rows[0].watermark if first_page and rows else None,
    )


async def feed(
    session: AsyncSession,
    claims: AccessClaims,
    tokens: ChangeTokens,
    since: str | None,
    limit: int,
    retention: timedelta,
) -> bytes:
    """A page of the feed as the response's body: ChangePage's JSON, written by the database
    but for the envelope (see app.changes.documents)."""
    now = int(time.time())
    # From nothing: the client needs no tombstone, so nothing it needs can have been purged.
    position = FeedPosition(0, now) if since is None else tokens.decode(since, claims.user_id)
    if since is not None and position.since_at < now - retention.total_seconds():
        raise Gone(EXPIRED)
    # One more than the page: whether it is there tells whether another page follows.
    params = {**access.params(claims), "since": position.since, "limit": limit + 1}
    params["page_size"] = limit
    if position.after is not None:
        params.update(after_params(position.after))
    dialect = session.get_bind().dialect
    stmt = _page_statement(dialect, position.starts_a_pass)
    # On the connection: the session's ORM result handling would cost every row a few calls.
    result = await (await session.connection()).execute(stmt, params)
    if dialect.name == "postgresql":
        page = _page_of_aggregate(result.one(), limit, position.starts_a_pass)
    else:
        page = _page_of_rows(result.all(), limit, position.starts_a_pass)
    if not page.found:
        await access.authorize(session, claims)
    if position.starts_a_pass:
        # Found nothing: `since` stays the watermark. One read by a statement of its own,
        # after the page's, could pass a transaction that committed in between, unseen (the
        # guarantee test caught exactly that).
        mark = position.since if page.watermark is None else page.watermark
        position = replace(position, mark=mark, mark_at=now)
    following = _following(position, page.last)
    # The token is base64url: nothing in it needs escaping.
    token = tokens.encode(following, claims.user_id)
    more = "false" if page.last is None else "true"
    body = f'{{"changes":[{page.documents}],"next_token":"{token}","has_more":{more}}}'
    return body.encode()


def _following(position: FeedPosition, last: tuple[int, uuid.UUID] | None) -> FeedPosition:
    """Where the next call goes on: further in this pass, or (its end) a new pass from the
    watermark its first page took."""
    if last is not None:
        return replace(position, after=last)
    return FeedPosition(since=position.mark or 0, since_at=position.mark_at or 0)


def expired_tombstones(retention: timedelta, now: datetime) -> Delete:
    """A batch of tombstones older than the retention (and its margin): app.purge runs it
    with the other clean-ups, in every worker, in the background."""
    old = (
        select(Change.object_id)
        .where(Change.deleted, Change.changed_at < now - retention - PURGE_MARGIN)
        .limit(PURGE_BATCH)
    )
    return delete(Change).where(Change.object_id.in_(old.scalar_subquery()))
