"""The accounts' tables: users, their logins and refresh tokens, failed logins, device tokens."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Uuid, text
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
    # current one is admitted (app.accounts.access): no wall-clock comparison across replicas.
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


# An IPv6 address with a zone is under 64 characters; whatever else a server reports is cut.
ADDRESS_LENGTH = 64


class Login(Base):
    """One login: what a password check started, and every refresh token rotated from it.

    The row every change to the login goes through (docs/adr/0101-refresh-token-families.md):
    a refresh locks it and checks it is live before issuing; logout, reuse detection, a
    password change and a deactivation lock it to end it. So an ending waits for a refresh in
    flight and then sees the token it issued, and a refresh after an ending sees the end.
    Its id is the family_id of its refresh tokens.
    """

    __tablename__ = "logins"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The absolute end (REFRESH_TOKEN_ABSOLUTE_DAYS after the password check): refreshing
    # never moves it, and no refresh token of the login outlives it.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RefreshToken(Base):
    """A refresh token, stored only as its SHA-256: a database leak yields no usable token.

    Tokens issued by one login share a family (family_id: the Login's id; no foreign key
    while a release that does not write logins may still run); reusing a rotated token ends
    the login.
    """

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The user's credential generation when the login began: a refresh is refused once the
    # user's has moved on (app.accounts.rotation.refresh).
    credential_generation: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class LoginFailure(Base):
    """One failed password check for an email, from a client address. Kept in the database,
    not in process memory, so the throttle holds across every worker and every replica."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_email_failed_at", "email", "failed_at"),
        Index("ix_login_failures_client_address_failed_at", "client_address", "failed_at"),
        Index("ix_login_failures_user_id_failed_at", "user_id", "failed_at"),
        Index("ix_login_failures_device_id_failed_at", "device_id", "failed_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Whatever was typed as the username, lower-cased: unknown emails are throttled too,
    # so the throttle cannot be used to find out which emails have accounts.
    email: Mapped[str] = mapped_column(String(320))
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The client's address as the app sees it (app.accounts.throttle.client_address); empty for
    # failures recorded before addresses were.
    client_address: Mapped[str] = mapped_column(
        String(ADDRESS_LENGTH), default="", server_default=text("''")
    )
    # The account whose password was wrong, when the email belonged to one: failures count
    # for the account whatever its email becomes. No foreign key: recording a failure must
    # not wait on (or deadlock with) a lock on the user's row; old rows are purged anyway.
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # The device token presented with the failure (app.accounts.devices): such failures count
    # against that token, not against the account's untrusted clients (OWASP device cookies).
    device_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class DeviceToken(Base):
    """Proof that a client once logged in to the account (OWASP "device cookies"): past the
    account-wide failure count, only a client presenting one may still try. Stored only as
    its SHA-256, like refresh tokens."""

    __tablename__ = "device_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
