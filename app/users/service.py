import contextlib
import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import tokens
from app.auth.security import PasswordHasher
from app.database import checkpoint, utcnow
from app.errors import BadRequest, Conflict, NotFound
from app.pagination import (
    bad_cursor,
    decode_cursor,
    encode_cursor,
    keyset_after,
    parse_aware,
    split_page,
)
from app.users.models import User
from app.users.schemas import UserAdminUpdate, UserListQuery, UserPage, UserRead, UserUpdateMe

EMAIL_TAKEN = "A user with this email already exists"
_USERS_CURSOR = "users"  # the one order users are listed in: created_at, then id


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.lower()))


async def get_by_id(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


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
    await _flush_unique(session)
    return user


async def ensure_superuser(
    session: AsyncSession, hasher: PasswordHasher, email: str, password: str
) -> None:
    """Create the first superuser at startup, unless a user with that email exists.

    Every worker runs this; the unique constraint makes exactly one of them succeed."""
    if await get_by_email(session, email) is not None:
        return
    hashed = await hasher.hash_async(password)
    with contextlib.suppress(Conflict):  # another worker created it first
        await create_user(session, email=email, hashed_password=hashed, is_superuser=True)


async def update_me(session: AsyncSession, user: User, changes: UserUpdateMe) -> User:
    for field, value in changes.model_dump(exclude_unset=True).items():
        setattr(user, field, value)
    await _flush_unique(session)
    return user


async def change_password(
    session: AsyncSession, hasher: PasswordHasher, user: User, current: str, new: str
) -> None:
    # Nothing holds a connection through the two bcrypt runs (the user was read already).
    await checkpoint(session)
    if not await hasher.verify_async(current, user.hashed_password):
        raise BadRequest("Current password is incorrect")
    hashed = await hasher.hash_async(new)
    now = utcnow()
    user.hashed_password = hashed
    # Access tokens issued before now are refused from here on (see get_current_user), and
    # every login's refresh token dies with the old password.
    user.password_changed_at = now
    await tokens.revoke_all(session, user.id, now)
    await session.flush()


async def delete_user(session: AsyncSession, user: User) -> None:
    # Todos, refresh tokens and idempotency records go with it (ON DELETE CASCADE).
    await session.delete(user)
    await session.flush()


async def list_page(session: AsyncSession, query: UserListQuery) -> UserPage:
    stmt = select(User).order_by(User.created_at, User.id).limit(query.limit + 1)
    if query.cursor is not None:
        value, last_id = decode_cursor(query.cursor, _USERS_CURSOR)
        try:
            created_at = parse_aware(value)
        except (ValueError, TypeError) as exc:
            raise bad_cursor() from exc
        stmt = stmt.where(keyset_after((User.created_at, User.id), (created_at, last_id)))
    page, last = split_page((await session.scalars(stmt)).all(), query.limit)
    next_cursor = (
        encode_cursor(_USERS_CURSOR, last.created_at.isoformat(), last.id) if last else None
    )
    return UserPage(items=[UserRead.model_validate(u) for u in page], next_cursor=next_cursor)


async def admin_update(session: AsyncSession, user_id: uuid.UUID, changes: UserAdminUpdate) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("User not found")
    values = changes.model_dump(exclude_unset=True)
    if values.get("is_active") is False and user.is_active:
        # Deactivation ends every login now; access tokens already fail on is_active.
        await tokens.revoke_all(session, user.id, utcnow())
    for field, value in values.items():
        setattr(user, field, value)
    await session.flush()
    return user


async def _flush_unique(session: AsyncSession) -> None:
    # The unique constraint decides, not a prior SELECT: two concurrent requests for one
    # email cannot both pass. A savepoint keeps the request's transaction usable afterwards.
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(EMAIL_TAKEN) from exc
