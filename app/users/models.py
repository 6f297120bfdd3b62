import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base, UTCDateTime, utcnow


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Stored lower-cased: the unique constraint is then the case-insensitive rule itself.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    hashed_password: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str | None] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # When the password last changed; informational, revocation never compares clocks.
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped whenever every existing login must end (password change, deactivation). Access
    # tokens and refresh tokens carry the generation they were issued for, and only the
    # current one is admitted (app.auth.access): no wall-clock comparison across replicas.
    credential_generation: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A stored user as services hand it around: a row of USER_COLUMNS, in this order."""

    id: uuid.UUID
    email: str
    hashed_password: str
    full_name: str | None
    is_active: bool
    is_superuser: bool
    created_at: datetime
    password_changed_at: datetime | None
    credential_generation: int


USER_COLUMNS = (
    User.id,
    User.email,
    User.hashed_password,
    User.full_name,
    User.is_active,
    User.is_superuser,
    User.created_at,
    User.password_changed_at,
    User.credential_generation,
)


class AccountUsage(Base):
    """How many todos and lists an account holds, for the quotas (MAX_TODOS_PER_USER,
    MAX_LISTS_PER_USER). Kept by triggers on todos and lists (the quotas migration), so every
    insert and delete counts, whichever release or cascade made it. A create locks its
    account's row while it checks the count, so concurrent creates cannot overshoot."""

    __tablename__ = "account_usage"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    todos: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    lists: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
