"""Subtasks' rules (one level; statements: app.todos.subtasks_repository).

A write that names a parent, changes a todo's list or completes it runs in a transaction that
first locks the todo and the parent it names (one statement, in id order). The checks then
read rows nobody can change meanwhile: a parent is re-parented only under its own lock, and a
subtask is added only under its parent's, so "the parent is top-level", "it is in this list"
and "this todo has no subtasks" stay true until the commit. A parent's list move and its
completion change its subtasks in the same transaction.
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.actor import Actor
from app.errors import InvalidInput
from app.todos import subtasks_repository as family
from app.todos.subtasks_repository import Family

PARENT = ("body", "parent_id")
NO_SUCH_PARENT = "No such todo"


def needs_family(values: dict[str, Any]) -> bool:
    """Whether a write must go through write_in_family (else one plain UPDATE will do)."""
    return (
        values.get("parent_id") is not None
        or "list_id" in values
        or values.get("completed") is True
    )


async def lock(
    session: AsyncSession, actor: Actor, todo_id: uuid.UUID, parent_id: uuid.UUID | None
) -> dict[uuid.UUID, Family]:
    ids = {todo_id} if parent_id is None else {todo_id, parent_id}
    return await family.lock(session, actor, ids)


async def check(
    session: AsyncSession,
    todo_id: uuid.UUID,
    todo: Family,
    locked: dict[uuid.UUID, Family],
    parent_id: uuid.UUID | None,
    list_id: uuid.UUID,
    *,
    named: bool,
) -> None:
    """422 unless the todo may be `parent_id`'s subtask in `list_id` (None: top level).
    `named`: the request names the parent; else it keeps its own (`todo.parent_id`)."""
    if parent_id is None:
        return
    if not named:
        if list_id != todo.list_id:
            raise InvalidInput(PARENT, "A subtask stays in its parent's list")
        return
    if parent_id == todo_id:
        raise InvalidInput(PARENT, "A todo cannot be its own subtask")
    parent = locked.get(parent_id)
    if parent is None:  # missing, or another user's: the same answer
        raise InvalidInput(PARENT, NO_SUCH_PARENT)
    if parent.parent_id is not None:
        raise InvalidInput(PARENT, "The parent is a subtask: subtasks have no subtasks")
    if parent.list_id != list_id:
        raise InvalidInput(PARENT, "The parent is in another list")
    if todo.parent_id != parent_id and await family.has_subtasks(session, todo_id):
        raise InvalidInput(PARENT, "A todo that has subtasks cannot become a subtask")


async def after_write(
    session: AsyncSession,
    actor: Actor,
    todo_id: uuid.UUID,
    before: Family,
    list_id: uuid.UUID,
    completed: bool,
    now: datetime,
) -> None:
    """What a written todo's subtasks follow: its new list, its completion."""
    if list_id != before.list_id:
        await family.carry_subtasks(session, actor, todo_id, list_id, now)
    if completed:
        await family.complete_subtasks(session, actor, todo_id, now)


async def check_after(
    session: AsyncSession,
    actor: Actor,
    after: uuid.UUID | None,
    list_id: uuid.UUID,
    parent_id: uuid.UUID | None,
) -> None:
    """A move's `after` must be a sibling: in the list, with the same parent."""
    if after is None:
        return
    found, its_parent = await family.parent_of(session, actor, after, list_id)
    if found and its_parent != parent_id:
        raise InvalidInput(("body", "after"), "`after` must have the same parent")


async def parent_for_create(
    session: AsyncSession, actor: Actor, parent_id: uuid.UUID, list_id: uuid.UUID | None
) -> uuid.UUID | None:
    """Lock a new subtask's parent and check it; the list it goes to (None: the parent is
    not the user's, or the user may not act: the caller asks which)."""
    locked = await family.lock(session, actor, {parent_id})
    parent = locked.get(parent_id)
    if parent is None:
        return None
    target = parent.list_id if list_id is None else list_id
    if parent.parent_id is not None:
        raise InvalidInput(PARENT, "The parent is a subtask: subtasks have no subtasks")
    if parent.list_id != target:
        raise InvalidInput(PARENT, "The parent is in another list")
    return target
