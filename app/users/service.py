import contextlib
import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth import tokens
from app.auth.security import PasswordHasher
from app.database import utcnow
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


def get_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.lower()))


def get_by_id(session: Session, user_id: uuid.UUID) -> User | None:
    return session.get(User, user_id)


def create_user(
    session: Session,
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
    _flush_unique(session)
    return user


def ensure_superuser(session: Session, hasher: PasswordHasher, email: str, password: str) -> None:
    """Create the first superuser at startup, unless a user with that email exists.

    Every worker runs this; the unique constraint makes exactly one of them succeed."""
    if get_by_email(session, email) is not None:
        return
    with contextlib.suppress(Conflict):  # another worker created it first
        create_user(session, email=email, hashed_password=hasher.hash(password), is_superuser=True)


def update_me(session: Session, user: User, changes: UserUpdateMe) -> User:
    for field, value in changes.model_dump(exclude_unset=True).items():
        setattr(user, field, value)
    _flush_unique(session)
    return user


def change_password(
    session: Session, hasher: PasswordHasher, user: User, current: str, new: str
) -> None:
    if not hasher.verify(current, user.hashed_password):
        raise BadRequest("Current password is incorrect")
    now = utcnow()
    user.hashed_password = hasher.hash(new)
    # Access tokens issued before now are refused from here on (see get_current_user), and
    # every login's refresh token dies with the old password.
    user.password_changed_at = now
    tokens.revoke_all(session, user.id, now)
    session.flush()


def delete_user(session: Session, user: User) -> None:
    # Todos, refresh tokens and idempotency records go with it (ON DELETE CASCADE).
    session.delete(user)
    session.flush()


def list_page(session: Session, query: UserListQuery) -> UserPage:
    stmt = select(User).order_by(User.created_at, User.id).limit(query.limit + 1)
    if query.cursor is not None:
        value, last_id = decode_cursor(query.cursor, _USERS_CURSOR)
        try:
            created_at = parse_aware(value)
        except (ValueError, TypeError) as exc:
            raise bad_cursor() from exc
        stmt = stmt.where(keyset_after((User.created_at, User.id), (created_at, last_id)))
    page, last = split_page(session.scalars(stmt).all(), query.limit)
    next_cursor = (
        encode_cursor(_USERS_CURSOR, last.created_at.isoformat(), last.id) if last else None
    )
    return UserPage(items=[UserRead.model_validate(u) for u in page], next_cursor=next_cursor)


def admin_update(session: Session, user_id: uuid.UUID, changes: UserAdminUpdate) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("User not found")
    values = changes.model_dump(exclude_unset=True)
    if values.get("is_active") is False and user.is_active:
        # Deactivation ends every login now; access tokens already fail on is_active.
        tokens.revoke_all(session, user.id, utcnow())
    for field, value in values.items():
        setattr(user, field, value)
    session.flush()
    return user


def _flush_unique(session: Session) -> None:
    # The unique constraint decides, not a prior SELECT: two concurrent requests for one
    # email cannot both pass. A savepoint keeps the request's transaction usable afterwards.
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(EMAIL_TAKEN) from exc
