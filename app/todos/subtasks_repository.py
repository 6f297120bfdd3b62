"""Subtasks' statements: locking a todo and the parent it names, and what a parent's write
does to its subtasks (complete them, carry them to its new list). Owner-scoped, with the
access rule, like every statement on todos (app.todos.repository)."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import access
from app.actor import Actor
from app.lists.positions import key_after
from app.todos import fields

_C, _TABLE = fields.C, fields.TABLE
_OWNED = (_C.owner_id == bindparam("user_id"), access.ADMITTED)


@dataclass(frozen=True, slots=True)
class Family:
    """A locked todo's place: its parent (None: top level) and its list."""

    parent_id: uuid.UUID | None
    list_id: uuid.UUID


# In id order, so that two writes locking the same two todos (A under B while B goes under A)
# take them in the same order and one waits instead of deadlocking. SQLite ignores FOR UPDATE:
# its writers hold the database's write lock for the whole transaction (BEGIN IMMEDIATE).
_LOCK = (
    select(_C.id, _C.parent_id, _C.list_id)
    .where(*_OWNED, _C.id.in_(bindparam("ids", expanding=True)))
    .order_by(_C.id)
    .with_for_update()
)


async def lock(session: AsyncSession, actor: Actor, ids: set[uuid.UUID]) -> dict[uuid.UUID, Family]:
    """Lock these of the user's todos (while the user may act); the ones found."""
    rows = (await session.execute(_LOCK, {**actor.params(), "ids": sorted(ids)})).all()
    return {row.id: Family(row.parent_id, row.list_id) for row in rows}


_HAS_SUBTASKS = select(_C.id).where(_C.parent_id == bindparam("of_parent")).limit(1)


async def has_subtasks(session: AsyncSession, todo_id: uuid.UUID) -> bool:
    """Whether the todo has a subtask (its lock keeps others from adding one meanwhile)."""
    return (await session.execute(_HAS_SUBTASKS, {"of_parent": todo_id})).first() is not None


_SIBLING = select(_C.parent_id).where(
    *_OWNED, _C.id == bindparam("todo_id"), _C.list_id == bindparam("list_id")
)


async def parent_of(
    session: AsyncSession, actor: Actor, todo_id: uuid.UUID, list_id: uuid.UUID
) -> tuple[bool, uuid.UUID | None]:
    """Whether the user's todo is in the list, and its parent."""
    params = {**actor.params(), "todo_id": todo_id, "list_id": list_id}
    row = (await session.execute(_SIBLING, params)).first()
    return (False, None) if row is None else (True, row.parent_id)


_COMPLETE = (
    update(_TABLE)
    .where(*_OWNED, _C.parent_id == bindparam("of_parent"), _C.completed.is_(False))
    .values(
        completed=True,
        completed_at=bindparam("now"),
        updated_at=bindparam("now"),
        version=_C.version + 1,
    )
)


async def complete_subtasks(
    session: AsyncSession, actor: Actor, parent_id: uuid.UUID, now: datetime
) -> None:
    params = {**actor.params(), "of_parent": parent_id, "now": now}
    await session.execute(_COMPLETE, params)


# Locked: a subtask re-parented meanwhile (under its own lock) is waited for and then no
# longer matches, so it stays with its new parent instead of following this one.
_IN_ORDER = (
    select(_C.id)
    .where(*_OWNED, _C.parent_id == bindparam("of_parent"))
    .order_by(_C.position)
    .with_for_update()
)
_LIST_END = select(func.max(_C.position)).where(_C.list_id == bindparam("list_id"))
_RELOCATE = (
    update(_TABLE)
    .where(_C.id == bindparam("item"), _C.parent_id == bindparam("of_parent"))
    .values(
        list_id=bindparam("new_list_id"),
        position=bindparam("key"),
        updated_at=bindparam("now"),
        version=_C.version + 1,
    )
)


async def carry_subtasks(
    session: AsyncSession, actor: Actor, parent_id: uuid.UUID, list_id: uuid.UUID, now: datetime
) -> None:
    """The parent's subtasks into its (locked) list: at its end, in their order."""
    params: dict[str, Any] = {**actor.params(), "of_parent": parent_id}
    ids = (await session.execute(_IN_ORDER, params)).scalars().all()
    if not ids:
        return
    key = (await session.execute(_LIST_END, {"list_id": list_id})).scalar()
    rewrites = []
    for item in ids:
        key = key_after(key)
        rewrites.append(
            {"item": item, "of_parent": parent_id, "key": key, "new_list_id": list_id, "now": now}
        )
    await session.execute(_RELOCATE, rewrites)
