import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import login_repository, password, repository
from app.accounts.models import User, UserRecord
from app.accounts.schemas import UserAdminUpdate, UserListQuery, UserPage, UserRead, UserUpdateMe
from app.accounts.security import PasswordHasher
from app.config import Settings
from app.database import transaction, utcnow
from app.errors import Conflict, InvalidInput, NotFound, Unauthorized
from app.pagination import bad_cursor, decode_cursor, encode_cursor, parse_aware, split_page
from app.retry import retrying

EMAIL_TAKEN = "A user with this email already exists"
CURRENT_PASSWORD_REQUIRED = "Field required: changing the email needs the current password"  # noqa: S105 - a message
_USERS_CURSOR = "users"  # the one order users are listed in: created_at, then id


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    hashed_password: str,
    full_name: str | None = None,
    is_superuser: bool = False,
) -> User:
    async with _unique_email(session):
        return await repository.insert(
            session,
            email=email,
            hashed_password=hashed_password,
            full_name=full_name,
            is_superuser=is_superuser,
        )


async def ensure_superuser(
    session: AsyncSession, hasher: PasswordHasher, email: str, password: str
) -> None:
    """Create the first superuser at startup, unless a user with that email exists.

    Every worker runs this; the unique constraint makes exactly one of them succeed."""
    if await repository.by_email(session, email) is not None:
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
        updated = await repository.update_user(session, user.id, values)
    if updated is None:  # deleted since its token was checked: the token's user is gone
        raise Unauthorized()
    return updated


async def delete_me(
    session: AsyncSession, checker: Checker, user: UserRecord, current_password: str
) -> None:
    await _verify(session, checker, user, current_password)
    async with transaction(session):
        # In the order every ending of a user's logins takes (app.accounts.login_repository):
        # the user's row, then the logins, then the rest. The DELETE alone locks the user's
        # row FOR UPDATE and then, cascading, each login: a refresh holding its login and
        # inserting a token (whose foreign key check wants the user's row in KEY SHARE mode)
        # deadlocked with it. FOR NO KEY UPDATE first lets that refresh finish; once every
        # login is locked, no refresh is left for the DELETE to wait on.
        await repository.lock_generation(session, user.id)
        await login_repository.lock_all(session, user.id)
        # Todos, logins, refresh tokens and idempotency records go with it (ON DELETE CASCADE).
        await repository.delete_user(session, user.id)


async def _verify(
    session: AsyncSession, checker: Checker, user: UserRecord, current_password: str | None
) -> None:
    if current_password is None:
        raise InvalidInput(("body", "current_password"), CURRENT_PASSWORD_REQUIRED, "missing")
    await password.verify_current(
        session, checker.hasher, checker.settings, user, current_password, checker.address
    )


async def list_page(session: AsyncSession, query: UserListQuery) -> UserPage:
    after = None
    if query.cursor is not None:
        value, last_id = decode_cursor(query.cursor, _USERS_CURSOR)
        try:
            after = (parse_aware(value), last_id)
        except (ValueError, TypeError) as exc:
            raise bad_cursor() from exc
    rows = await repository.page(session, query.limit + 1, after)
    page, last = split_page(rows, query.limit)
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
        user = await repository.lock_entity(session, user_id)
        if user is None:
            raise NotFound("User not found")
        values = changes.model_dump(exclude_unset=True)
        if values.get("is_active") is False and user.is_active:
            # Deactivation ends every login for good: a later reactivation does not revive
            # the tokens of before (their generation is gone), nor a login in flight.
            user.credential_generation += 1
            await login_repository.end_all(session, user.id, utcnow())
        for name, value in values.items():
            setattr(user, name, value)
    return user


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
