"""Users' statements: every read, write and lock of the users table, and the access rule's own
check (app.accounts.access). A method that finds nothing returns None (or False); the services
decide which answer that is. Bind parameter names live here alone; the access rule's come from
Actor.params().
"""

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.access import ADMITS, ADMITTED
from app.accounts.models import USER_COLUMNS, User, UserRecord
from app.actor import Actor
from app.pagination import after_params, keyset_after

# Built once: constructing a statement costs more than running it.
_ADMITS = select(ADMITTED)
_BY_ID = select(*USER_COLUMNS).where(User.id == bindparam("user_id"))
_ADMITTED = select(*USER_COLUMNS).where(ADMITS)
_BY_EMAIL = select(*USER_COLUMNS).where(User.email == bindparam("email"))
# FOR NO KEY UPDATE: it waits for a password change (an UPDATE) and makes one wait, yet lets
# refresh-token inserts (a foreign key check: FOR KEY SHARE) for the user through.
_GENERATION_FOR_UPDATE = (
    select(User.credential_generation)
    .where(User.id == bindparam("user_id"))
    .with_for_update(key_share=True)
)
_PAGE = (
    select(*USER_COLUMNS)
    .order_by(User.created_at, User.id)
    .limit(bindparam("limit", type_=Integer))
)
_PAGE_AFTER = _PAGE.where(keyset_after((User.created_at, User.id)))


def _record(row: Any) -> UserRecord | None:
    return None if row is None else UserRecord(*row)


async def admits(session: AsyncSession, actor: Actor) -> bool:
    """Whether the actor's user may still act (the access rule on its own)."""
    return bool((await session.execute(_ADMITS, actor.params())).scalar())


async def by_email(session: AsyncSession, email: str) -> UserRecord | None:
    return _record((await session.execute(_BY_EMAIL, {"email": email.lower()})).first())


async def by_id(session: AsyncSession, user_id: uuid.UUID) -> UserRecord | None:
    return _record((await session.execute(_BY_ID, {"user_id": user_id})).first())


async def admitted(session: AsyncSession, actor: Actor) -> UserRecord | None:
    """The actor's user, if it may still act."""
    return _record((await session.execute(_ADMITTED, actor.params())).first())


async def page(
    session: AsyncSession, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[UserRecord]:
    """Up to `limit` users in the order they are listed in (created_at, then id), after the
    cursor's row when there is one."""
    params: dict[str, Any] = {"limit": limit}
    stmt = _PAGE
    if after is not None:
        stmt = _PAGE_AFTER
        params.update(after_params(after))
    return [UserRecord(*row) for row in (await session.execute(stmt, params)).all()]


async def insert(
    session: AsyncSession,
    *,
    email: str,
    hashed_password: str,
    full_name: str | None,
    is_superuser: bool,
) -> User:
    """A new user, flushed: an email taken already raises IntegrityError here."""
    user = User(
        email=email.lower(),
        hashed_password=hashed_password,
        full_name=full_name,
        is_superuser=is_superuser,
    )
    session.add(user)
    await session.flush()
    return user


async def update_user(
    session: AsyncSession, user_id: uuid.UUID, values: Mapping[str, Any]
) -> UserRecord | None:
    """Set these columns of the user (None: no such user). updated_at follows by itself (the
    column's onupdate)."""
    stmt = update(User).where(User.id == user_id).values(**values).returning(*USER_COLUMNS)
    return _record((await session.execute(stmt)).first())


async def delete_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    # Todos, refresh tokens and idempotency records go with it (ON DELETE CASCADE).
    await session.execute(delete(User).where(User.id == user_id))


async def set_password(
    session: AsyncSession, actor: Actor, hashed_password: str, now: datetime
) -> bool:
    """Store a new password and move the credential generation on, only while the actor's
    generation is still the user's (False otherwise, and nothing changed)."""
    changed = await session.execute(
        update(User)
        .where(ADMITS)
        .values(
            hashed_password=hashed_password,
            password_changed_at=now,
            credential_generation=User.credential_generation + 1,
        )
        .returning(User.id),
        actor.params(),
    )
    return changed.first() is not None


async def lock_generation(session: AsyncSession, user_id: uuid.UUID) -> int | None:
    """The user's credential generation (None: no such user), locked until the transaction
    ends on PostgreSQL: a password change cannot commit between this read and the tokens
    issued on it. (SQLite's writers are serialised by BEGIN IMMEDIATE already.)"""
    generation: int | None = (
        await session.execute(_GENERATION_FOR_UPDATE, {"user_id": user_id})
    ).scalar()
    return generation


async def lock_entity(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    """The user as an entity whose changes are written when the transaction commits (the
    administration's cold path), locked until then. FOR NO KEY UPDATE, as a password change's
    UPDATE takes: FOR UPDATE would also wait for the user's refreshes' token INSERTs (their
    foreign key check), while they wait for this transaction's ending of their logins: a
    deadlock, answered 503."""
    return await session.get(User, user_id, with_for_update={"key_share": True})
