"""Ids chosen by the client (API.md, v1.4): POST /todos and POST /lists take an optional id.

An id is taken for good: by any object of either kind, of any user, also one deleted since.
The arbiter is the primary key of client_ids, a row per id a client chose, inserted in the
create's transaction: of concurrent creates with one id, one inserts it and the others fail on
it (on PostgreSQL, after waiting for the first to commit), then read whose it is. A row holds
the request's fingerprint, so the same request again is recognised and answered with the
object, and any other request is 409. Ids the server chose are not in the table; the changes
table (every object's latest change, tombstones included) and the objects' own tables say
whether one is or was taken. Reading them is no check-then-insert race: a server-chosen id
is random and reaches a client only after its object has committed. The decision:
docs/adr/0411-client-chosen-ids.md.
"""

import enum
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar, cast

from sqlalchemy import ForeignKey, String, Table, Uuid, bindparam, exists, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.accounts import access, authorization
from app.accounts.security import AccessClaims
from app.actor import Actor
from app.changes.models import Change
from app.database import Base, UTCDateTime, utcnow
from app.errors import Conflict
from app.lists.models import TodoList
from app.todos.models import Todo

T = TypeVar("T")
ID_TAKEN = "This id is taken: it names another object, or was created with another body"


class ClientId(Base):
    """An id a client chose for a new list or todo, and the request that chose it."""

    __tablename__ = "client_ids"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # An account's ids go with it (its objects and their tombstones do too).
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(4))  # "list" | "todo", as in changes
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Claim(enum.Enum):
    NEW = "new"  # this request took the id: create the object
    SAME = "same"  # the same request took it before: answer with the object
    TAKEN = "taken"


_T = cast(Table, ClientId.__table__)
_CLAIM = (
    insert(_T)
    .from_select(
        ["id", "owner_id", "kind", "request_hash", "created_at"],
        select(
            bindparam("id", type_=Uuid()),
            bindparam("user_id", type_=Uuid()),
            bindparam("kind", type_=String()),
            bindparam("request_hash", type_=String()),
            bindparam("now", type_=UTCDateTime()),
        ).where(access.ADMITTED),
    )
    .returning(_T.c.id)
)
# Whose an id is: compared with this request in Python, never shown to the client.
_CLAIMED = select(_T.c.owner_id, _T.c.kind, _T.c.request_hash).where(_T.c.id == bindparam("id"))
_THIS_ID = bindparam("id", type_=Uuid())
_IN_USE = select(
    or_(
        exists().where(Change.object_id == _THIS_ID),
        exists().where(Todo.id == _THIS_ID),
        exists().where(TodoList.id == _THIS_ID),
    )
)


def request_hash(body: str) -> str:
    """The create request's body as validated (trimmed, defaults filled in), hashed."""
    return hashlib.sha256(body.encode()).hexdigest()


async def claim(
    session: AsyncSession, claims: AccessClaims, object_id: uuid.UUID, kind: str, body: str
) -> Claim:
    """Take `object_id` for this create, in the caller's transaction (its rollback frees it)."""
    fingerprint, owner_id = request_hash(body), claims.user_id
    params = {**Actor.of(claims).params(), "id": object_id, "kind": kind}
    try:
        async with session.begin_nested():
            params.update(request_hash=fingerprint, now=utcnow())
            if (await session.execute(_CLAIM, params)).first() is None:
                await authorization.authorize(session, claims)  # the user may not act: 401
                raise RuntimeError("a user who may act claimed nothing")
    except IntegrityError:
        row = (await session.execute(_CLAIMED, {"id": object_id})).first()
        if row is not None and (row.owner_id, row.kind, row.request_hash) == (
            owner_id,
            kind,
            fingerprint,
        ):
            return Claim.SAME
        return Claim.TAKEN
    if (await session.execute(_IN_USE, {"id": object_id})).scalar():
        return Claim.TAKEN  # an object the server named, or its tombstone
    return Claim.NEW


async def create_once(
    session: AsyncSession,
    claims: AccessClaims,
    object_id: uuid.UUID,
    kind: str,
    body: str,
    existing: Callable[[], Awaitable[T | None]],
    create: Callable[[], Awaitable[T]],
) -> T:
    """`create` the object named `object_id` (in the caller's transaction), or for the same
    request again, the `existing` one as it is now; 409 when the id is taken otherwise (also
    when that object was deleted since), saying nothing about whose it is."""
    found = await claim(session, claims, object_id, kind, body)
    if found is Claim.NEW:
        return await create()
    if found is Claim.SAME:
        current = await existing()
        if current is not None:
            return current
    await authorization.authorize(session, claims)  # a user who may not act learns nothing
    raise Conflict(ID_TAKEN)
