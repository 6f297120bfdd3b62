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
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import JSON

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
        # parent_id= (a todo's subtasks, in position order) and top_level=true (parent_id
        # IS NULL) walk this index; also the FK's cascade and "has it subtasks?".
        Index("ix_todos_owner_parent_position", "owner_id", "parent_id", "position", "id"),
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
    # A subtask's parent: a top-level todo of the same user in the same list (one level;
    # app.todos.subtasks keeps that under the parent's row lock). Deleting the parent deletes
    # its subtasks, also when the release before deletes it. Nullable: expand/contract.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("todos.id", ondelete="CASCADE"))
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

    # The labels as given (trimmed, in order), read with the row like any field; todo_labels
    # indexes them for the label= filter and GET /labels (docs/adr/0402-labels-denormalised.md).
    # JSONB on PostgreSQL: its equality lets a write of the same labels be a no-op. The server
    # default: the release before inserts todos without labels (expand/contract).
    labels: Mapped[list[str]] = mapped_column(
        JSON().with_variant(JSONB(), "postgresql"), server_default=text("'[]'")
    )


# When a todo is due, whichever kind of due it has: what due_before/due_after, sort=due_date
# and the stats use. An index on the very expression serves them (ADR 0401).
due_at = func.coalesce(Todo.__table__.c.due_day_starts_at, Todo.__table__.c.due_date)
Index("ix_todos_owner_due_at", Todo.__table__.c.owner_id, due_at, Todo.__table__.c.id)


class TodoLabel(Base):
    """One label of a todo, casefolded: the index of `label=` and of GET /labels. Written by
    the repository in the transaction that writes the todo's labels column."""

    __tablename__ = "todo_labels"
    __table_args__ = (
        # The filter (a user's todos with this label) and the counts (a user's labels).
        Index("ix_todo_labels_user_key", "user_id", "name_key", "todo_id"),
    )

    # Deleting a todo (or its list, or its user) deletes its labels.
    todo_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("todos.id", ondelete="CASCADE"), primary_key=True
    )
    # str.casefold() of the trimmed name: up to 3 characters per character (e.g. "ΐ").
    name_key: Mapped[str] = mapped_column(String(150), primary_key=True)
    # The todo's owner, copied so that the index is owner-scoped like every todo index.
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    name: Mapped[str] = mapped_column(String(50))  # as spelled on the todo
