import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base, UTCDateTime, utcnow


class IdempotencyKey(Base):
    """The first response to a POST carrying an Idempotency-Key, for replaying retries."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # The request's fingerprint (app.idempotency.service.fingerprint): body, method and path.
    request_hash: Mapped[str] = mapped_column(String(64))
    # The id of the object the response is about: a todo's, or since v1.4 a list's too (the
    # name is the release before's, which still writes todo creates here). No foreign key: a
    # retry gets the first response even if the object was deleted since.
    todo_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    response_body: Mapped[str] = mapped_column(Text)
    etag: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
