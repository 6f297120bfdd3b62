"""Logins' statements: the rows behind a login (app.accounts.models.Login), its refresh tokens
and the device tokens of an account; every read, write and lock of them.

Every refresh of a login, and everything that ends it, locks the login's row first: the order
is always the login's row, then its refresh tokens (and, for an ending of all of a user's
logins, the user's row before both), so these never deadlock one another. Tokens are stored
only as hashes (app.accounts.security.hash_refresh_token): the raw values never come here.
"""

import uuid
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import ColumnElement, bindparam, delete, exists, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import DeviceToken, Login, RefreshToken
from app.database import dialect_name


class LoginState(NamedTuple):
    user_id: uuid.UUID
    expires_at: datetime
    revoked_at: datetime | None


class StoredToken(NamedTuple):
    """A stored refresh token (by its hash)."""

    id: uuid.UUID
    user_id: uuid.UUID
    family_id: uuid.UUID  # its login's id
    expires_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None
    credential_generation: int


class NewToken(NamedTuple):
    user_id: uuid.UUID
    family_id: uuid.UUID
    # The user's credential generation the login was verified against.
    credential_generation: int


class NewDevice(NamedTuple):
    token_hash: str
    created_at: datetime
    expires_at: datetime


# FOR UPDATE (on SQLite nothing: BEGIN IMMEDIATE has serialised every writer already).
_LOCK = (
    select(Login.user_id, Login.expires_at, Login.revoked_at)
    .where(Login.id == bindparam("login_id"))
    .with_for_update()
)
# A family the release before this one started has tokens but no login row yet.
_FAMILY_START = (
    select(RefreshToken.user_id, func.min(RefreshToken.created_at))
    .where(RefreshToken.family_id == bindparam("login_id"))
    .group_by(RefreshToken.user_id)
)
_TOKEN_BY_HASH = select(
    RefreshToken.id,
    RefreshToken.user_id,
    RefreshToken.family_id,
    RefreshToken.expires_at,
    RefreshToken.rotated_at,
    RefreshToken.revoked_at,
    RefreshToken.credential_generation,
).where(RefreshToken.token_hash == bindparam("token_hash"))
_LIVE_DEVICE = select(DeviceToken.id).where(
    DeviceToken.token_hash == bindparam("token_hash"),
    DeviceToken.user_id == bindparam("user_id"),
    DeviceToken.expires_at > bindparam("now"),
)


async def start(
    session: AsyncSession, user_id: uuid.UUID, now: datetime, ends: datetime
) -> uuid.UUID:
    """A new login of the user, ending at `ends`; its id is the family id of its tokens."""
    login_id = uuid.uuid4()
    await session.execute(
        insert(Login).values(id=login_id, user_id=user_id, created_at=now, expires_at=ends)
    )
    return login_id


async def lock(
    session: AsyncSession, login_id: uuid.UUID, lifetime: timedelta
) -> LoginState | None:
    """The login, locked until the transaction ends (None: no such login). Called first in
    every transaction that changes a login or its tokens."""
    row = (await session.execute(_LOCK, {"login_id": login_id})).first()
    if row is not None:
        return LoginState(*row)
    # Tokens from a release without logins: give their family its row now (whichever
    # transaction inserts it first; the others then wait on it like on any other).
    family = (await session.execute(_FAMILY_START, {"login_id": login_id})).first()
    if family is None:
        return None
    user_id, started = family
    values = {"id": login_id, "user_id": user_id, "created_at": started}
    postgres = dialect_name(session) == "postgresql"
    new_login = (postgresql_insert if postgres else sqlite_insert)(Login)
    await session.execute(
        new_login.values(**values, expires_at=started + lifetime).on_conflict_do_nothing(
            index_elements=[Login.id]
        )
    )
    row = (await session.execute(_LOCK, {"login_id": login_id})).first()
    return None if row is None else LoginState(*row)


_LOCK_ALL = select(Login.id).where(Login.user_id == bindparam("user_id")).with_for_update()
# Ended for good: logged out or revoked, past its absolute end, or with no refresh token left
# that could still be exchanged (the client stopped refreshing). Nothing brings one back.
_ENDED = (
    select(Login.id)
    .where(
        or_(
            Login.revoked_at.is_not(None),
            Login.expires_at <= bindparam("now"),
            ~exists().where(
                RefreshToken.family_id == Login.id,
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > bindparam("now"),
            ),
        )
    )
    .limit(bindparam("limit"))
    # A login some transaction holds (a refresh, a logout, a deletion) waits for the next
    # round; the rest are locked as every change to a login is, before its tokens.
    .with_for_update(skip_locked=True)
)


async def purge_ended(session: AsyncSession, now: datetime, limit: int) -> int:
    """Delete up to `limit` ended logins with their refresh tokens; how many logins went.
    The tokens go too: a login row is made again from its family's tokens (lock())."""
    ended = (await session.execute(_ENDED, {"now": now, "limit": limit})).scalars().all()
    if ended:
        await session.execute(delete(RefreshToken).where(RefreshToken.family_id.in_(ended)))
        await session.execute(delete(Login).where(Login.id.in_(ended)))
    return len(ended)


async def lock_all(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Lock every login of the user (the account's deletion), after the user's row: each
    refresh in flight finishes first, and no other starts until the transaction ends."""
    await session.execute(_LOCK_ALL, {"user_id": user_id})


async def end(session: AsyncSession, login_id: uuid.UUID, now: datetime) -> None:
    """End a login the caller has locked (lock()): its row, and every token of it, including
    one a refresh that held the lock before committed (this statement's snapshot is newer)."""
    await session.execute(
        update(Login).where(Login.id == login_id, Login.revoked_at.is_(None)).values(revoked_at=now)
    )
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == login_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def end_all(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> None:
    """End every login of the user (a password change, a deactivation). The UPDATE waits for
    each refresh in flight that holds one of them; the tokens' UPDATE after it sees what those
    refreshes issued."""
    await session.execute(
        update(Login)
        .where(Login.user_id == user_id, Login.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def add_token(
    session: AsyncSession, new: NewToken, token_hash: str, now: datetime, expires_at: datetime
) -> None:
    await session.execute(
        insert(RefreshToken).values(
            id=uuid.uuid4(),
            user_id=new.user_id,
            family_id=new.family_id,
            credential_generation=new.credential_generation,
            token_hash=token_hash,
            created_at=now,
            expires_at=expires_at,
        )
    )


async def find_token(session: AsyncSession, token_hash: str) -> StoredToken | None:
    """The stored token, or None. Not locked: its login's row is (lock())."""
    row = (await session.execute(_TOKEN_BY_HASH, {"token_hash": token_hash})).first()
    return None if row is None else StoredToken(*row)


async def mark_rotated(session: AsyncSession, token_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(RefreshToken).where(RefreshToken.id == token_id).values(rotated_at=now)
    )


async def find_device(
    session: AsyncSession, token_hash: str, user_id: uuid.UUID, now: datetime
) -> uuid.UUID | None:
    """The id of the device token with this hash if it is a live one of this account."""
    params = {"token_hash": token_hash, "user_id": user_id, "now": now}
    found: uuid.UUID | None = (await session.execute(_LIVE_DEVICE, params)).scalar()
    return found


async def replace_devices(
    session: AsyncSession,
    user_id: uuid.UUID,
    replacing: uuid.UUID | None,
    keep: int,
    new: NewDevice,
) -> None:
    """Store a new device token of the account; the one `replacing`, and all but the newest
    `keep` live others, are deleted first."""
    now = new.created_at
    newest = (
        select(DeviceToken.id)
        .where(DeviceToken.user_id == user_id, DeviceToken.expires_at > now)
        .order_by(DeviceToken.created_at.desc(), DeviceToken.id)
        .limit(keep)
    )
    stale: ColumnElement[bool] = DeviceToken.id.not_in(newest)
    if replacing is not None:
        stale = or_(stale, DeviceToken.id == replacing)
    await session.execute(delete(DeviceToken).where(DeviceToken.user_id == user_id, stale))
    await session.execute(
        insert(DeviceToken).values(
            id=uuid.uuid4(),
            user_id=user_id,
            token_hash=new.token_hash,
            created_at=now,
            expires_at=new.expires_at,
        )
    )
