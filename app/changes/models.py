import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base, UTCDateTime


class Change(Base):
    """The latest change of each list and todo: written only by the database's triggers
    (see app.changes and the lists migration), read by the feed."""

    __tablename__ = "changes"
    __table_args__ = (
        # The feed: one user's changes in commit order.
        Index("ix_changes_owner_txid", "owner_id", "txid", "object_id"),
        # Purging old tombstones looks at tombstones only.
        Index(
            "ix_changes_tombstones",
            "changed_at",
            postgresql_where=text("deleted"),
            sqlite_where=text("deleted"),
        ),
    )

    # Lists and todos have UUIDs: one id space, so the object's id alone is the key.
    object_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(4))  # "list" | "todo"
    # No foreign key: it would check the owner on every recorded change (most of the triggers'
    # cost, measured with bench/trigger_cost.py). A trigger on users deletes an account's rows,
    # and the recording triggers write none for an owner that is gone: no orphans either way.
    owner_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    deleted: Mapped[bool] = mapped_column(Boolean)
    # PostgreSQL: the writing transaction's id; SQLite: the change clock (app.changes).
    txid: Mapped[int] = mapped_column(BigInteger)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Unwritten since b24e6a0f3c71 (the feed writes its JSON in Python); kept for the release
    # before, and a downgrade fills it. Before: the change as the feed returned it, written
    # with the row. NULL: a value the database could not write (the feed answers 500).
    document: Mapped[str | None] = mapped_column(Text)


class ChangeClock(Base):
    """SQLite only (unused on PostgreSQL): one row, a counter every change increments."""

    __tablename__ = "change_clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class ChangeWaiter(Base):
    """PostgreSQL: a waiting feed request (app.changes.registry), so that the recording trigger
    notifies only the owners someone waits for. UNLOGGED there (migration 8b3f0d6c2e15): a row
    lost in a crash costs a late answer, never a missed one. Unused on SQLite."""

    __tablename__ = "change_waiters"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    # Past it the row is ignored (a crashed worker's) and purged (app.purge).
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
