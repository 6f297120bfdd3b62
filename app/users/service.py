import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.auth import tokens
from app.auth.access import ADMITS
from app.auth.security import PasswordHasher
from app.database import UnitOfWork, utcnow
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


async def get_by_email(db: UnitOfWork, email: str) -> UserRecord | None:
    return _record((await db.execute(_BY_EMAIL, {"email": email.lower()})).first())


async def get_by_id(db: UnitOfWork, user_id: uuid.UUID) -> UserRecord | None:
    return _record((await db.execute(_BY_ID, {"user_id": user_id})).first())


async def get_admitted(db: UnitOfWork, access_params: dict[str, Any]) -> UserRecord | None:
    """The token's user, if it may still act (app.auth.access)."""
    return _record((await db.execute(_ADMITTED, access_params)).first())


def _record(row: Any) -> UserRecord | None:
    return None if row is None else UserRecord(*row)


async def create_user(
    db: UnitOfWork,
    *,
    email: str,
    hashed_password: str,
    full_name: str | None = None,
    is_superuser: bool = False,
) -> UserRecord:
    now = utcnow()
    values = {
        "id": uuid.uuid4(),
        "email": email.lower(),
        "hashed_password": hashed_password,
        "full_name": full_name,
        "is_active": True,
        "is_superuser": is_superuser,
        "created_at": now,
        "updated_at": now,
    }
    async with _unique_email(db):
        row = (await db.execute(insert(User).values(values).returning(*USER_COLUMNS))).one()
    return UserRecord(*row)


async def ensure_superuser(
    db: UnitOfWork, hasher: PasswordHasher, email: str, password: str
) -> None:
    """Create the first superuser at startup, unless a user with that email exists.

    Every worker runs this; the unique constraint makes exactly one of them succeed."""
    if await get_by_email(db, email) is not None:
        return
    hashed = await hasher.hash_async(password)
    with contextlib.suppress(Conflict):  # another worker created it first
        await create_user(db, email=email, hashed_password=hashed, is_superuser=True)


async def update_me(db: UnitOfWork, user: UserRecord, changes: UserUpdateMe) -> UserRecord:
    values = changes.model_dump(exclude_unset=True)
    if "email" in values:
        values["email"] = values["email"].lower()
    async with _unique_email(db):
        return await _update(db, user.id, values)


async def change_password(
    db: UnitOfWork, hasher: PasswordHasher, user: UserRecord, current: str, new: str
) -> None:
    # Nothing holds a connection through the two bcrypt runs (the user was read already).
    await db.release()
    if not await hasher.verify_async(current, user.hashed_password):
        raise BadRequest("Current password is incorrect")
    hashed = await hasher.hash_async(new)
    now = utcnow()
    # Access tokens issued before now are refused from here on (app.auth.access), and every
    # login's refresh token dies with the old password.
    async with db.transaction():
        await _update(db, user.id, {"hashed_password": hashed, "password_changed_at": now})
        await tokens.revoke_all(db, user.id, now)


async def delete_user(db: UnitOfWork, user: UserRecord) -> None:
    # Todos, refresh tokens and idempotency records go with it (ON DELETE CASCADE).
    await db.execute(delete(User).where(User.id == user.id))


async def list_page(db: UnitOfWork, query: UserListQuery) -> UserPage:
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
    page, last = split_page((await db.execute(stmt, params)).all(), query.limit)
    next_cursor = (
        encode_cursor(_USERS_CURSOR, last.created_at.isoformat(), last.id) if last else None
    )
    return UserPage(items=[UserRead.model_validate(u) for u in page], next_cursor=next_cursor)


async def admin_update(db: UnitOfWork, user_id: uuid.UUID, changes: UserAdminUpdate) -> UserRecord:
    async with db.transaction():
        user = await get_by_id(db, user_id)
        if user is None:
            raise NotFound("User not found")
        values = changes.model_dump(exclude_unset=True)
        if values.get("is_active") is False and user.is_active:
            # Deactivation ends every login now; access tokens already fail on is_active.
            await tokens.revoke_all(db, user.id, utcnow())
        return await _update(db, user.id, values)


async def _update(db: UnitOfWork, user_id: uuid.UUID, values: dict[str, Any]) -> UserRecord:
    # updated_at follows by itself (the column's onupdate).
    stmt = update(User).where(User.id == user_id).values(**values).returning(*USER_COLUMNS)
    row = (await db.execute(stmt)).first()
    if row is None:  # deleted meanwhile
        raise NotFound("User not found")
    return UserRecord(*row)


@contextlib.asynccontextmanager
async def _unique_email(db: UnitOfWork) -> AsyncIterator[None]:
    # The unique constraint decides, not a prior SELECT: two concurrent requests for one
    # email cannot both pass. A savepoint keeps the request's transaction usable afterwards.
    try:
        async with db.savepoint():
            yield
    except IntegrityError as exc:
        raise Conflict(EMAIL_TAKEN) from exc
