import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import logins, password
from app.accounts.access import ADMITS
from app.accounts.models import USER_COLUMNS, User, UserRecord
from app.accounts.schemas import UserAdminUpdate, UserListQuery, UserPage, UserRead, UserUpdateMe
from app.accounts.security import PasswordHasher
from app.config import Settings
from app.database import transaction, utcnow
from app.errors import Conflict, InvalidInput, NotFound, Unauthorized
from app.pagination import (
    after_params,
    bad_cursor,
    decode_cursor,
    encode_cursor,
    keyset_after,
    parse_aware,
    split_page,
)
from app.retry import retrying

EMAIL_TAKEN = "A user with this email already exists"
CURRENT_PASSWORD_REQUIRED = "Field required: changing the email needs the current password"  # noqa: S105 - a message
_USERS_CURSOR = "users"  # the one order users are listed in: created_at, then id
_BY_ID = select(*USER_COLUMNS).where(User.id == bindparam("user_id"))
_ADMITTED = select(*USER_COLUMNS).where(ADMITS)
_BY_EMAIL = select(*USER_COLUMNS).where(User.email == bindparam("email"))


async def get_by_email(session: AsyncSession, email: str) -> UserRecord | None:
    return _record((await session.execute(_BY_EMAIL, {"email": email.lower()})).first())


async def get_by_id(session: AsyncSession, user_id: uuid.UUID) -> UserRecord | None:
    return _record((await session.execute(_BY_ID, {"user_id": user_id})).first())


async def get_admitted(session: AsyncSession, access_params: dict[str, Any]) -> UserRecord | None:
    """The token's user, if it may still act (app.accounts.access)."""
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


@dataclass(frozen=True, slots=True)
class Checker:
    """What checking a current password takes (app.accounts.password.verify_current)."""

    hasher: PasswordHasher
    settings: Settings
    address: str  # the client's, for the throttle (app.accounts.throttle.client_address)


async def update_me(
    session: AsyncSession, checker: Checker, user: UserRecord, changes: UserUpdateMe
) -> UserRecord:
    values = changes.model_dump(exclude_unset=True, exclude={"current_password"})
    if "email" in values:
        # The password first: without it, 409 against 200 would tell anyone holding an
        # access token which emails have accounts (issue 29).
        await _verify(session, checker, user, changes.current_password)
        values["email"] = values["email"].lower()
    async with _unique_email(session):
        return await _update(session, user.id, values)


async def delete_me(
    session: AsyncSession, checker: Checker, user: UserRecord, current_password: str
) -> None:
    await _verify(session, checker, user, current_password)
    async with transaction(session):
        # In the order every ending of a user's logins takes (app.accounts.logins): the
        # user's row, then the logins, then the rest. The DELETE alone locks the user's row
        # FOR UPDATE and then, cascading, each login: a refresh holding its login and
        # inserting a token (whose foreign key check wants the user's row in KEY SHARE mode)
        # deadlocked with it. FOR NO KEY UPDATE first lets that refresh finish; once every
        # login is locked, no refresh is left for the DELETE to wait on.
        await lock_generation(session, user.id)
        await logins.lock_all(session, user.id)
        # Todos, logins, refresh tokens and idempotency records go with it (ON DELETE CASCADE).
        await session.execute(delete(User).where(User.id == user.id))


async def _verify(
    session: AsyncSession, checker: Checker, user: UserRecord, current_password: str | None
) -> None:
    if current_password is None:
        raise InvalidInput(("body", "current_password"), CURRENT_PASSWORD_REQUIRED, "missing")
    await password.verify_current(
        session, checker.hasher, checker.settings, user, current_password, checker.address
    )


# FOR NO KEY UPDATE: it waits for a password change (an UPDATE) and makes one wait, yet lets
# refresh-token inserts (a foreign key check: FOR KEY SHARE) for the user through.
_GENERATION_FOR_UPDATE = (
    select(User.credential_generation)
    .where(User.id == bindparam("user_id"))
    .with_for_update(key_share=True)
)


async def lock_generation(session: AsyncSession, user_id: uuid.UUID) -> int | None:
    """The user's credential generation (None: no such user), locked until the transaction
    ends on PostgreSQL: a password change cannot commit between this read and the tokens
    issued on it. (SQLite's writers are serialised by BEGIN IMMEDIATE already.)"""
    generation: int | None = (
        await session.execute(_GENERATION_FOR_UPDATE, {"user_id": user_id})
    ).scalar()
    return generation


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
    return await retrying(lambda: _admin_update(session, user_id, changes))


async def _admin_update(
    session: AsyncSession, user_id: uuid.UUID, changes: UserAdminUpdate
) -> User:
    async with transaction(session):
        # FOR NO KEY UPDATE, as a password change's UPDATE takes: FOR UPDATE would also wait
        # for the user's refreshes' token INSERTs (their foreign key check), while they wait
        # for this transaction's ending of their logins: a deadlock, answered 503.
        user = await session.get(User, user_id, with_for_update={"key_share": True})
        if user is None:
            raise NotFound("User not found")
        values = changes.model_dump(exclude_unset=True)
        if values.get("is_active") is False and user.is_active:
            # Deactivation ends every login for good: a later reactivation does not revive
            # the tokens of before (their generation is gone), nor a login in flight.
            user.credential_generation += 1
            await logins.end_all(session, user.id, utcnow())
        for name, value in values.items():
            setattr(user, name, value)
    return user


async def _update(session: AsyncSession, user_id: uuid.UUID, values: dict[str, Any]) -> UserRecord:
    # updated_at follows by itself (the column's onupdate).
    stmt = update(User).where(User.id == user_id).values(**values).returning(*USER_COLUMNS)
    row: Any = (await session.execute(stmt)).first()
    if row is None:  # deleted since its token was checked: the token's user is gone
        raise Unauthorized()
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
