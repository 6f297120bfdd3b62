import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import tokens
from app.auth.access import ADMITS
from app.auth.security import PasswordHasher
from app.database import transaction, utcnow
from app.errors import BadRequest, Conflict, NotFound
from app.pagination import (
    after_params,
    bad_cursor,
    decode_cursor,
    encode_cursor,
    keyset_after,
    parse_aware,
    split_page,
)
from app.users.models import USER_COLUMNS, User, UserRecord
from app.users.schemas import UserAdminUpdate, UserListQuery, UserPage, UserRead, UserUpdateMe

EMAIL_TAKEN = "A user with this email already exists"
_USERS_CURSOR = "users"  # the one order users are listed in: created_at, then id
_BY_ID = select(*USER_COLUMNS).where(User.id == bindparam("user_id"))
_ADMITTED = select(*USER_COLUMNS).where(ADMITS)
_BY_EMAIL = select(*USER_COLUMNS).where(User.email == bindparam("email"))


async def get_by_email(session: AsyncSession, email: str) -> UserRecord | None:
    return _record((await session.execute(_BY_EMAIL, {"email": email.lower()})).first())


async def get_by_id(session: AsyncSession, user_id: uuid.UUID) -> UserRecord | None:
    return _record((await session.execute(_BY_ID, {"user_id": user_id})).first())


async def get_admitted(session: AsyncSession, access_params: dict[str, Any]) -> UserRecord | None:
    """The token's user, if it may still act (app.auth.access)."""
    return _record((await session.execute(_ADMITTED, access_params)).first())


def _record(row: Any) -> UserRecord | None:
    return None if row is None else UserRecord(*row)


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    hashed_password: str,
    full_name: str | None = None,
    is_superuser: bool = False,
) -> User:
    user = User(
        email=email.lower(),
        hashed_password=hashed_password,
        full_name=full_name,
        is_superuser=is_superuser,
    )
    session.add(user)
    async with _unique_email(session):
        await session.flush()
    return user


async def ensure_superuser(
    session: AsyncSession, hasher: PasswordHasher, email: str, password: str
) -> None:
    """Create the first superuser at startup, unless a user with that email exists.

    Every worker runs this; the unique constraint makes exactly one of them succeed."""
    if await get_by_email(session, email) is not None:
        return
    await session.commit()  # no connection held through bcrypt
    hashed = await hasher.hash_async(password)
    with contextlib.suppress(Conflict):  # another worker created it first
        await create_user(session, email=email, hashed_password=hashed, is_superuser=True)


async def update_me(session: AsyncSession, user: UserRecord, changes: UserUpdateMe) -> UserRecord:
    values = changes.model_dump(exclude_unset=True)
    if "email" in values:
        values["email"] = values["email"].lower()
    async with _unique_email(session):
        return await _update(session, user.id, values)


async def change_password(
    session: AsyncSession, hasher: PasswordHasher, user: UserRecord, current: str, new: str
) -> None:
    # Nothing holds a connection through the two bcrypt runs (the user was read already):
    # commit() ends the autocommit transaction and gives its connection back to the pool.
    await session.commit()
    if not await hasher.verify_async(current, user.hashed_password):
        raise BadRequest("Current password is incorrect")
    hashed = await hasher.hash_async(new)
    now = utcnow()
    # Access tokens issued before now are refused from here on (app.auth.access), and every
    # login's refresh token dies with the old password.
    async with transaction(session):
        await _update(session, user.id, {"hashed_password": hashed, "password_changed_at": now})
        await tokens.revoke_all(session, user.id, now)


async def delete_user(session: AsyncSession, user: UserRecord) -> None:
    # Todos, refresh tokens and idempotency records go with it (ON DELETE CASCADE).
    await session.execute(delete(User).where(User.id == user.id))


async def list_page(session: AsyncSession, query: UserListQuery) -> UserPage:
    stmt = select(*USER_COLUMNS).order_by(User.created_at, User.id).limit(query.limit + 1)
    params: dict[str, Any] = {}
    if query.cursor is not None:
        value, last_id = decode_cursor(query.cursor, _USERS_CURSOR)
        try:
            created_at = parse_aware(value)
        except (ValueError, TypeError) as exc:
            raise bad_cursor() from exc
        stmt = stmt.where(keyset_after((User.created_at, User.id)))
        params = after_params((created_at, last_id))
    page, last = split_page((await session.execute(stmt, params)).all(), query.limit)
    next_cursor = (
        encode_cursor(_USERS_CURSOR, last.created_at.isoformat(), last.id) if last else None
    )
    return UserPage(items=[UserRead.model_validate(u) for u in page], next_cursor=next_cursor)


async def admin_update(session: AsyncSession, user_id: uuid.UUID, changes: UserAdminUpdate) -> User:
    async with transaction(session):
        user = await session.get(User, user_id, with_for_update=True)
        if user is None:
            raise NotFound("User not found")
        values = changes.model_dump(exclude_unset=True)
        if values.get("is_active") is False and user.is_active:
            # Deactivation ends every login now; access tokens already fail on is_active.
            await tokens.revoke_all(session, user.id, utcnow())
        for name, value in values.items():
            setattr(user, name, value)
    return user


async def _update(session: AsyncSession, user_id: uuid.UUID, values: dict[str, Any]) -> UserRecord:
    # updated_at follows by itself (the column's onupdate).
    stmt = update(User).where(User.id == user_id).values(**values).returning(*USER_COLUMNS)
    row: Any = (await session.execute(stmt)).first()
    if row is None:  # deleted meanwhile
        raise NotFound("User not found")
    return UserRecord(*row)


@contextlib.asynccontextmanager
async def _unique_email(session: AsyncSession) -> AsyncIterator[None]:
    # The unique constraint decides, not a prior SELECT: two concurrent requests for one
    # email cannot both pass. Every caller writes in one statement (autocommit), so the
    # failed one took nothing else with it.
    try:
        yield
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(EMAIL_TAKEN) from exc
