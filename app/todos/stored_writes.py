"""Writes that depend on what the row stores (issue 27): a PATCH of one due field needs the
others (app.todos.dates), and a completion or a change of a recurring todo's rule or due
needs its series (app.todos.recurring). These read the stored fields under the row's lock
and write in the same transaction, so no write in between can make a todo with both dues,
leave the day's instants computed from another zone's day, or move a recurring todo's due
twice to the same occurrence; If-Match is still a condition of the UPDATE itself.
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.actor import Actor
from app.database import transaction
from app.errors import InvalidInput
from app.todos import recurring, repository
from app.todos.dates import day_instants
from app.todos.repository import VersionedTodo
from app.todos.schemas import BOTH_DUES


def needed(changes: dict[str, Any]) -> bool:
    """Whether a write depends on fields it leaves out: setting one of due_day and due_date
    must find the other null (a todo has at most one), the day's instants follow from
    due_day and time_zone together, and a recurring todo's series from what it stores."""
    sent = changes.keys()
    return (
        (changes.get("due_day") is not None and "due_date" not in sent)
        or (changes.get("due_date") is not None and "due_day" not in sent)
        or (("due_day" in sent) != ("time_zone" in sent))
        or recurring.involved(changes)
    )


async def merge(
    session: AsyncSession, actor: Actor, todo_id: uuid.UUID, values: dict[str, Any], now: datetime
) -> bool:
    """`values` completed from the stored fields (see needed), read under the row's lock (in
    the caller's transaction); False: no such todo of the actor's."""
    stored = await repository.lock_stored(session, actor, todo_id)
    if stored is None:
        return False
    merged = {**stored, **values}
    if merged["due_day"] is not None and merged["due_date"] is not None:
        field = "due_day" if values.get("due_day") is not None else "due_date"
        raise InvalidInput(("body", field), BOTH_DUES)
    recurring.settle(stored, values, now)  # may move the due
    merged = {**stored, **values}
    values.update(day_instants(merged["due_day"], merged["time_zone"]))
    return True


async def write(
    session: AsyncSession,
    actor: Actor,
    todo_id: uuid.UUID,
    values: dict[str, Any],
    now: datetime,
    write: Callable[[], Awaitable[VersionedTodo | None]],
) -> VersionedTodo | None:
    """`values` completed from the stored fields (merge), then written by `write`, in one
    transaction (a change of list or parent goes through app.todos.service's family write,
    which merges them under its own locks)."""
    async with transaction(session):
        if not await merge(session, actor, todo_id, values, now):
            return None  # the caller finds out why
        return await write()
