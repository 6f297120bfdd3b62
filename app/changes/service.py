"""The change feed: every change to a user's lists and todos since a token, never one missed.

What records a change. Triggers on lists and todos (AFTER INSERT, UPDATE, DELETE; see the lists
migration) upsert one row per object into `changes`: its owner, whether it is deleted now, and
a stamp `txid` written inside the very transaction that made the change. Triggers, not the
app's code, so cascades (deleting a list deletes its todos) and writers that know nothing of
the feed (the release before this one, a hand-run script) are recorded too. A row holds only
the object's latest state: whether it is deleted, and when. A page reads those rows joined to
the lists and todos they name, in one statement, and writes each item with the model GET writes
(ListRead, TodoRead): the triggers write no JSON (issue 24; app.changes.repository).

How a token maps to "since". A feed read takes a watermark W with this property: every
transaction that can still commit a change has a stamp >= W, and everything with a smaller
stamp that ever commits is already visible. A pass delivers the rows with txid >= since in
(txid, object_id) order, a keyset page at a time, and its last page hands back W as the next
`since` — W as read by the very statement that read the pass's FIRST page (the same
snapshot). A pass whose first page finds nothing hands back its own `since` instead. Within
one answer the changes are then reordered parents first (app.changes.order); the token goes on
from the page's last row in the keyset, whatever order the answer shows.

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
from datetime import timedelta

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import authorization
from app.accounts.security import AccessClaims
from app.actor import Actor
from app.changes import repository
from app.changes.order import parents_first
from app.changes.schemas import Change
from app.changes.tokens import ChangeTokens, FeedPosition
from app.errors import Gone
from app.pagination import split_page

EXPIRED = "This since is older than the change history kept: start again without since"
# Tombstones outlive the retention by a day: a token issued just inside the retention must
# still find the tombstones of transactions that were running when it was issued.


_CHANGES = TypeAdapter(list[Change])


class UnwrittenChange(RuntimeError):
    """A live change whose object the page did not find: a 500, never a page without it or
    with a false tombstone (the object and its change commit together, so it cannot happen
    but for a bug)."""


def _documents(rows: Sequence[repository.ChangeRow]) -> bytes:
    """The page's changes as ChangePage.changes' JSON list, with the models GET writes, the whole
    page validated and written in one call each (a change at a time cost three times more)."""
    changes = []
    for row in rows:
        if not row.deleted and row.item is None:
            raise UnwrittenChange()
        changes.append(
            {"type": row.kind, "id": row.object_id, "deleted": row.deleted, "item": row.item}
        )
    return _CHANGES.dump_json(_CHANGES.validate_python(changes))


@dataclass(frozen=True, slots=True)
class Page:
    changes: Sequence[repository.ChangeRow]
    following: FeedPosition  # where the next call goes on: its token
    more: bool


def position(
    claims: AccessClaims, tokens: ChangeTokens, since: str | None, retention: timedelta
) -> FeedPosition:
    """Where `since` says the client is (from nothing: the start); 410 past the retention."""
    now = int(time.time())
    # From nothing: the client needs no tombstone, so nothing it needs can have been purged.
    if since is None:
        return FeedPosition(0, now)
    found = tokens.decode(since, claims.user_id)
    if found.since_at < now - retention.total_seconds():
        raise Gone(EXPIRED)
    return found


async def read(
    session: AsyncSession, claims: AccessClaims, position: FeedPosition, limit: int
) -> Page:
    """The page at `position`, and the position after it."""
    now = int(time.time())
    # One more than the page: whether it is there tells whether another page follows.
    read = await repository.page(
        session, Actor.of(claims), position.since, position.after, limit + 1
    )
    rows, last_row = split_page(read.rows, limit)
    if not read.rows:
        await authorization.authorize(session, claims)
    last = None if last_row is None else (rows[-1].txid, rows[-1].object_id)
    if position.starts_a_pass:
        # Found nothing: `since` stays the watermark. One read by a statement of its own,
        # after the page's, could pass a transaction that committed in between, unseen (the
        # guarantee test caught exactly that).
        mark = position.since if read.watermark is None else read.watermark
        # Found nothing: whatever the pass before saw is still all there was.
        seen = position.seen if read.watermark is None else read.snapshot
        position = replace(position, mark=mark, mark_at=now, mark_seen=seen)
    return Page(rows, _following(position, last), last is not None)


def body(page: Page, tokens: ChangeTokens, user_id: uuid.UUID) -> bytes:
    """ChangePage's JSON, written with the models GET writes, in one call a page (_documents)."""
    # The token is base64url: nothing in it needs escaping.
    token = tokens.encode(page.following, user_id)
    return b'{"changes":%b,"next_token":"%b","has_more":%b}' % (
        # Reordered only now: where the next page starts is the keyset's last row.
        _documents(parents_first(page.changes)),
        token.encode(),
        b"true" if page.more else b"false",
    )


async def feed(
    session: AsyncSession,
    claims: AccessClaims,
    tokens: ChangeTokens,
    since: str | None,
    limit: int,
    retention: timedelta,
) -> bytes:
    """A page of the feed as the response's body (ChangePage's JSON)."""
    page = await read(session, claims, position(claims, tokens, since, retention), limit)
    return body(page, tokens, claims.user_id)


def _following(position: FeedPosition, last: tuple[int, uuid.UUID] | None) -> FeedPosition:
    """Where the next call goes on: further in this pass, or (its end) a new pass from the
    watermark its first page took."""
    if last is not None:
        return replace(position, after=last, seen=None)
    return FeedPosition(
        since=position.mark or 0, since_at=position.mark_at or 0, seen=position.mark_seen
    )
