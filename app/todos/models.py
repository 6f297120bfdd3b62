import enum
import uuid
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base, UTCDateTime, utcnow


class Priority(enum.IntEnum):
    # Stored as its rank, so sorting and keyset pagination by priority are plain comparisons.
    low = 0
    normal = 1
    high = 2


class Todo(Base):
    __tablename__ = "todos"
    __table_args__ = (
        CheckConstraint("priority BETWEEN 0 AND 2", name="priority_range"),
        # Every list is owner-scoped: one index per sort order, each ending in id (the tiebreak).
        Index("ix_todos_owner_created", "owner_id", "created_at", "id"),
        Index("ix_todos_owner_updated", "owner_id", "updated_at", "id"),
        Index("ix_todos_owner_due", "owner_id", "due_date", "id"),
        Index("ix_todos_owner_priority", "owner_id", "priority", "id"),
        Index("ix_todos_owner_title", "owner_id", "title", "id"),
        Index("ix_todos_owner_position", "owner_id", "position", "id"),
        # One position per list: the arbiter of concurrent placements, and (list_id first)
        # the index of list_id= walks in position order and of the list's cascade.
        UniqueConstraint("list_id", "position", name="uq_todos_list_position"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # Nullable in this release only (expand/contract): the release before inserts todos
    # without them, and a trigger fills them in (see the lists migration).
    list_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    position: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    completed: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[int] = mapped_column(SmallInteger, default=Priority.normal)
    due_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Bumped by every write, under the row lock the write holds (see todos.repository); the ETag.
    version: Mapped[int] = mapped_column(Integer, default=1)
    # An all-day due (issue 27): the day, in time_zone (null: UTC), and two instants derived
    # from them on every write, for SQL to filter, sort and count by (ADR 0401): when the day
    # starts (when the todo is due) and when it ends (when it is overdue). All three are null
    # for a todo with a due_date, whose due is that instant. Nullable (expand/contract): the
    # release before knows none of them, and its writes leave them null.
    due_day: Mapped[date | None] = mapped_column(Date)
    time_zone: Mapped[str | None] = mapped_column(String(64))
    remind_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_day_starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_day_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A recurring todo (issue 27; app/todos/recurrence.py): its RRULE, the due its series
    # started from (DTSTART, as an instant; COUNT counts from it), set by the server whenever
    # the rule or the due is set by a client, and when it was last completed. Nullable
    # (expand/contract): the release before knows none of them.
    recurrence: Mapped[str | None] = mapped_column(String(200))
    recurrence_anchor: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# When a todo is due, whichever kind of due it has: what due_before/due_after, sort=due_date
# and the stats use. An index on the very expression serves them (ADR 0401).
due_at = func.coalesce(Todo.__table__.c.due_day_starts_at, Todo.__table__.c.due_date)
Index("ix_todos_owner_due_at", Todo.__table__.c.owner_id, due_at, Todo.__table__.c.id)


class IdempotencyKey(Base):
    """The first response to a POST /todos carrying an Idempotency-Key, for replaying retries."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    # No foreign key: a retry gets the first response even if the todo was deleted since.
    todo_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    response_body: Mapped[str] = mapped_column(Text)
    etag: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
