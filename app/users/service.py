import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.users.models import User
from app.users.schemas import UserUpdateMe

EMAIL_TAKEN = "A user with this email already exists"


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


def update_me(session: Session, user: User, changes: UserUpdateMe) -> User:
    for field, value in changes.model_dump(exclude_unset=True).items():
        setattr(user, field, value)
    _flush_unique(session)
    return user


def delete_user(session: Session, user: User) -> None:
    # Todos, refresh tokens and idempotency records go with it (ON DELETE CASCADE).
    session.delete(user)
    session.flush()


def _flush_unique(session: Session) -> None:
    # The unique constraint decides, not a prior SELECT: two concurrent requests for one
    # email cannot both pass. A savepoint keeps the request's transaction usable afterwards.
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(EMAIL_TAKEN) from exc
