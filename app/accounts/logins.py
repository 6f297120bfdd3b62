"""Login storage: start, lock, end. A login is one row (app.accounts.models.Login) that every
refresh of it, and everything that ends it, locks first: the order is always the login's row,
then its refresh tokens (and, for an ending of all of a user's logins, the user's row before
both), so these never deadlock one another."""

import uuid
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import bindparam, delete, exists, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import tokens
from app.accounts.models import Login, RefreshToken
from app.database import dialect_name


class LoginState(NamedTuple):
    user_id: uuid.UUID
    expires_at: datetime
    revoked_at: datetime | None


# FOR UPDATE (on SQLite nothing: BEGIN IMMEDIATE has serialised every writer already).
_LOCK = (
    select(Login.user_id, Login.expires_at, Login.revoked_at)
    .where(Login.id == bindparam("login_id"))
    .with_for_update()
)
_LOCK_ALL = select(Login.id).where(Login.user_id == bindparam("user_id")).with_for_update()
# A family the release before this one started has tokens but no login row yet.
_FAMILY_START = (
    select(RefreshToken.user_id, func.min(RefreshToken.created_at))
    .where(RefreshToken.family_id == bindparam("login_id"))
    .group_by(RefreshToken.user_id)
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
    await tokens.revoke_family(session, login_id, now)


async def end_all(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> None:
    """End every login of the user (a password change, a deactivation). The UPDATE waits for
    each refresh in flight that holds one of them; the tokens' UPDATE after it sees what those
    refreshes issued."""
    await session.execute(
        update(Login)
        .where(Login.user_id == user_id, Login.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await tokens.revoke_all(session, user_id, now)
