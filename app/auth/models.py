import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base, UTCDateTime, utcnow

# An IPv6 address with a zone is under 64 characters; whatever else a server reports is cut.
ADDRESS_LENGTH = 64


class RefreshToken(Base):
    """A refresh token, stored only as its SHA-256: a database leak yields no usable token.

    Tokens issued by one login share a family; reusing a rotated token revokes the family.
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
    # user's has moved on (app.auth.service.refresh).
    credential_generation: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class LoginFailure(Base):
    """One failed password check for an email, from a client address. Kept in the database,
    not in process memory, so the throttle holds across every worker and every replica."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_email_failed_at", "email", "failed_at"),
        Index("ix_login_failures_client_address_failed_at", "client_address", "failed_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Whatever was typed as the username, lower-cased: unknown emails are throttled too,
    # so the throttle cannot be used to find out which emails have accounts.
    email: Mapped[str] = mapped_column(String(320))
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The client's address as the app sees it (app.auth.throttle.client_address); empty for
    # failures recorded before addresses were.
    client_address: Mapped[str] = mapped_column(
        String(ADDRESS_LENGTH), default="", server_default=text("''")
    )
