"""Todos: the decisions (creating one: app.todos.creating). Statements live in
app.todos.repository; this module decides what a request does with them: where a todo
goes and how often a placement is tried (app.lists.ordering), the no-op rule, and which answer
is due when a statement finds nothing (refuse: 401, 404 or 412).
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, NoReturn, TypeVar

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import authorization
from app.accounts.security import AccessClaims
from app.actor import Actor
from app.database import transaction, utcnow
from app.errors import InvalidInput, NotFound, PreconditionFailed
from app.etags import matching_versions
from app.idempotency import service as idempotency
from app.idempotency.service import Keyed, Stored
from app.lists.ordering import key_for_move, place, place_nested
from app.todos import labels_repository, repository, stored_writes, subtasks
from app.todos.dates import day_instants
from app.todos.models import Priority
from app.todos.repository import VersionedTodo
from app.todos.schemas import (
    MoveTodo,
    TodoRead,
    TodoReplace,
    TodoUpdate,
)

__all__ = ["VersionedTodo"]

T = TypeVar("T")
NOT_FOUND_MESSAGE = "Todo not found"
NO_SUCH_LIST = "No such list"
_READ = TypeAdapter(TodoRead)


async def refuse(
    session: AsyncSession, claims: AccessClaims, todo_id: uuid.UUID, *, if_match: bool = False
) -> NoReturn:
    """Why a statement on the token user's todo found nothing: the user may not act (401),
    there is no such todo of theirs (404, also for someone else's), or If-Match failed.
    Without If-Match the statement could only have missed the todo: no need to look again."""
    await authorization.authorize(session, claims)
    if if_match and await repository.exists_for(session, Actor.of(claims), todo_id):
        raise PreconditionFailed()
    raise NotFound(NOT_FOUND_MESSAGE)


async def refuse_list(session: AsyncSession, claims: AccessClaims) -> NoReturn:
    await authorization.authorize(session, claims)
    # A missing list and another user's are the same answer.
    raise InvalidInput(("body", "list_id"), NO_SUCH_LIST)


async def get_owned(
    session: AsyncSession, claims: AccessClaims, todo_id: uuid.UUID
) -> VersionedTodo:
    todo = await repository.get(session, Actor.of(claims), todo_id)
    if todo is None:
        await refuse(session, claims, todo_id)
    return todo


def stored(todo: VersionedTodo) -> Stored:
    """The todo as a write's response: its JSON and ETag, as a replay gives them back."""
    return Stored(todo.body.id, _READ.dump_json(todo.body).decode(), todo.etag)


async def update_todo(
    session: AsyncSession,
    claims: AccessClaims,
    todo_id: uuid.UUID,
    data: TodoUpdate,
    if_match: str | None,
) -> VersionedTodo:
    """PATCH: only the fields the client sent."""
    return await _write(session, claims, todo_id, data.model_dump(exclude_unset=True), if_match)


async def replace_todo(
    session: AsyncSession,
    claims: AccessClaims,
    todo_id: uuid.UUID,
    data: TodoReplace,
    if_match: str | None,
) -> VersionedTodo:
    """PUT: every writable field; the omitted ones come back as their defaults."""
    # Without a list_id the todo stays where it is: its place is not a field to reset.
    fields = data.model_dump(exclude=None if "list_id" in data.model_fields_set else {"list_id"})
    if fields.get("list_id", ...) is None:
        fields.pop("list_id")  # an explicit null: the same as leaving it out
    return await _write(session, claims, todo_id, fields, if_match)


async def _write(
    session: AsyncSession,
    claims: AccessClaims,
    todo_id: uuid.UUID,
    changes: dict[str, Any],
    if_match: str | None,
) -> VersionedTodo:
    actor = Actor.of(claims)
    versions = matching_versions(if_match)
    values = column_values(changes)
    stored_needed = stored_writes.needed(changes)
    if values and not stored_needed and ("due_day" in values or "time_zone" in values):
        values.update(day_instants(values["due_day"], values["time_zone"]))
    if values:
        now = utcnow()

        async def write() -> VersionedTodo | None:
            written = await repository.update_changed(
                session, actor, todo_id, values, versions, now
            )
            if written is not None and "labels" in values:  # in the same transaction
                await labels_repository.index(session, actor, todo_id, written.body.labels)
            return written

        if subtasks.needs_family(values):
            # A parent named, a list changed or a completion: the subtasks' rules, under locks
            # (the stored dues read under the same lock when the write needs them).
            written = await place(
                session,
                None,
                lambda: _write_in_family(
                    session, claims, todo_id, values, now, write, stored_needed
                ),
            )
        elif stored_needed:  # in a transaction of its own, labels and all
            written = await stored_writes.write(session, actor, todo_id, values, now, write)
        else:
            written = await atomic(session, write, "labels" in values)()
        if written is not None:
            return written
    # Nothing was written: no such todo of theirs (or a user who may not act), a stale
    # If-Match, or a write that changes no stored value (the UPDATE only matches a row it
    # changes), which answers with the todo as it is: same body, same ETag.
    current = await get_owned(session, claims, todo_id)
    if versions is not None and current.version not in versions:
        raise PreconditionFailed()
    return current


async def _write_in_family(
    session: AsyncSession,
    claims: AccessClaims,
    todo_id: uuid.UUID,
    values: dict[str, Any],
    now: datetime,
    write: Callable[[], Awaitable[VersionedTodo | None]],
    stored_needed: bool,
) -> VersionedTodo | None:
    """The write in a transaction that holds the todo's and its named parent's locks (then
    the target list's), after app.todos.subtasks' checks; None if nothing was written."""
    actor = Actor.of(claims)
    named = "parent_id" in values
    locked = await subtasks.lock(session, actor, todo_id, values.get("parent_id"))
    todo = locked.get(todo_id)
    if todo is None or (
        stored_needed and not await stored_writes.merge(session, actor, todo_id, values, now)
    ):
        return None  # the caller asks why
    list_id: uuid.UUID = values.get("list_id", todo.list_id)
    if "list_id" in values and not await repository.lock_owned_list(session, actor, list_id):
        await refuse_list(session, claims)
    parent_id = values["parent_id"] if named else todo.parent_id
    await subtasks.check(session, todo_id, todo, locked, parent_id, list_id, named=named)
    written = await write()
    if written is not None:
        # Completed by this write: completed_at is this write's time (kept when it was done).
        completing = written.body.completed and written.body.completed_at == now
        await subtasks.after_write(session, actor, todo_id, todo, list_id, completing, now)
    return written


async def move_todo(
    session: AsyncSession,
    claims: AccessClaims,
    todo_id: uuid.UUID,
    data: MoveTodo,
    if_match: str | None,
    keyed: Keyed | None,
) -> Stored:
    """Right after `after` in the list (its own, or list_id): a transaction that locks the
    list, reads the two neighbours and writes a key between them; nobody else moves."""
    actor = Actor.of(claims)
    versions = matching_versions(if_match)

    async def locked() -> VersionedTodo:
        # The todo and a parent it names first, then the list (as every write takes them).
        reparent = "parent_id" in data.model_fields_set
        locked = await subtasks.lock(session, actor, todo_id, data.parent_id)
        todo = locked.get(todo_id)
        if todo is None:
            await refuse(session, claims, todo_id)
        parent_id = data.parent_id if reparent else todo.parent_id
        list_id = data.list_id
        if list_id is None:
            parent = locked.get(data.parent_id) if data.parent_id is not None else None
            list_id = todo.list_id if parent is None else parent.list_id
        if not await repository.lock_owned_list(session, actor, list_id):
            await refuse_list(session, claims)
        await subtasks.check(session, todo_id, todo, locked, parent_id, list_id, named=reparent)
        await subtasks.check_after(session, actor, data.after, list_id, parent_id)
        key = await key_for_move(session, repository.ORDER, list_id, todo_id, data.after)
        now = utcnow()
        moved = await repository.place_at(
            session, actor, todo_id, list_id, parent_id, key, versions, now
        )
        if moved is None:
            await refuse(session, claims, todo_id, if_match=versions is not None)
        await subtasks.after_write(session, actor, todo_id, todo, list_id, False, now)
        return moved

    if keyed is None:
        return stored(await place(session, None, locked))

    async def move_once() -> Stored:
        return stored(await place_nested(session, None, locked))

    # Without parent_id, the body as the release before hashed it.
    unset = None if "parent_id" in data.model_fields_set else {"parent_id"}
    body = data.model_dump_json(exclude=unset) + f"\nIf-Match: {if_match}"
    return await idempotency.once(session, claims, keyed, body, move_once)


async def delete_todo(
    session: AsyncSession, claims: AccessClaims, todo_id: uuid.UUID, if_match: str | None
) -> None:
    versions = matching_versions(if_match)
    if not await repository.delete_owned(session, Actor.of(claims), todo_id, versions):
        await refuse(session, claims, todo_id, if_match=versions is not None)


def atomic(
    session: AsyncSession, write: Callable[[], Awaitable[T]], needed: bool
) -> Callable[[], Awaitable[T]]:
    """`write` in a transaction of its own when it is more than one statement (`needed`)."""
    if not needed:
        return write

    async def at_once() -> T:
        async with transaction(session):
            return await write()

    return at_once


def column_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Schema fields as stored: the priority as its rank (see models.Priority)."""
    if "priority" in fields:
        fields = {**fields, "priority": Priority[str(fields["priority"])].value}
    return fields
