"""Todos: the decisions. Statements live in app.todos.repository (and the idempotency store
in app.todos.idempotency); this module decides what a request does with them: where a todo
goes and how often a placement is tried (app.lists.ordering), the no-op rule, and which answer
is due when a statement finds nothing (refuse: 401, 404 or 412).
"""

import hashlib
import uuid
from typing import Any, NoReturn

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import access
from app.accounts.security import AccessClaims
from app.actor import Actor
from app.database import transaction, utcnow
from app.errors import InvalidInput, NotFound, PreconditionFailed
from app.etags import matching_versions
from app.lists.ordering import key_for_move, place, place_nested
from app.quotas import TODOS, check
from app.todos import idempotency, recurring, repository, stored_writes
from app.todos.dates import day_instants
from app.todos.idempotency import CreatedTodo
from app.todos.models import Priority
from app.todos.repository import VersionedTodo
from app.todos.schemas import (
    MoveTodo,
    TodoCreate,
    TodoRead,
    TodoUpdate,
)

__all__ = ["CreatedTodo", "VersionedTodo"]

NOT_FOUND_MESSAGE = "Todo not found"
NO_SUCH_LIST = "No such list"
_READ = TypeAdapter(TodoRead)


async def refuse(
    session: AsyncSession, claims: AccessClaims, todo_id: uuid.UUID, *, if_match: bool = False
) -> NoReturn:
    """Why a statement on the token user's todo found nothing: the user may not act (401),
    there is no such todo of theirs (404, also for someone else's), or If-Match failed.
    Without If-Match the statement could only have missed the todo: no need to look again."""
    await access.authorize(session, claims)
    if if_match and await repository.exists_for(session, Actor.of(claims), todo_id):
        raise PreconditionFailed()
    raise NotFound(NOT_FOUND_MESSAGE)


async def refuse_list(session: AsyncSession, claims: AccessClaims) -> NoReturn:
    await access.authorize(session, claims)
    # A missing list and another user's are the same answer.
    raise InvalidInput(("body", "list_id"), NO_SUCH_LIST)


async def get_owned(
    session: AsyncSession, claims: AccessClaims, todo_id: uuid.UUID
) -> VersionedTodo:
    todo = await repository.get(session, Actor.of(claims), todo_id)
    if todo is None:
        await refuse(session, claims, todo_id)
    return todo


async def create(
    session: AsyncSession, claims: AccessClaims, data: TodoCreate, quota: int
) -> CreatedTodo:
    """At the end of the list; 403 once the account holds `quota` todos (app.quotas)."""
    return _created(await _insert(session, claims, data, quota))


async def create_idempotent(
    session: AsyncSession, claims: AccessClaims, data: TodoCreate, key: str, quota: int
) -> CreatedTodo:
    """Create once per (user, key); a retry with the same body gets the first response back."""
    owner_id = claims.user_id
    request_hash = hashlib.sha256(data.model_dump_json().encode()).hexdigest()
    async with transaction(session):
        await access.authorize(session, claims)  # before any stored response is replayed
        record = await idempotency.remembered(session, owner_id, key)
        if record is not None and record.created_at < utcnow() - idempotency.IDEMPOTENCY_TTL:
            await idempotency.forget(session, owner_id, key)
            record = None
        if record is None:
            todo = await _insert(session, claims, data, quota, nested=True)
            created = _created(todo)
            record = await idempotency.remember(
                session, owner_id, key, request_hash, created, utcnow()
            )
            if record is None:
                return created
            # A concurrent request with this key won: ours must leave nothing behind.
            await repository.delete_unowned(session, todo.body.id)
    if record.request_hash != request_hash:
        raise InvalidInput(
            ("header", "Idempotency-Key"),
            "This Idempotency-Key was already used with a different request body",
        )
    return record.response


async def _insert(
    session: AsyncSession,
    claims: AccessClaims,
    data: TodoCreate,
    quota: int,
    *,
    nested: bool = False,
) -> VersionedTodo:
    actor, now = Actor.of(claims), utcnow()
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "completed_at": now if data.completed else None,
        "created_at": now,
        "updated_at": now,
        "version": 1,
        **_column_values(data.model_dump(exclude={"list_id"})),
        **day_instants(data.due_day, data.time_zone),
    }
    recurring.on_create(values)

    async def append() -> VersionedTodo:
        todo = await repository.insert_at_end(session, actor, values, data.list_id, quota)
        if todo is None:
            await access.authorize(session, claims)
            await check(session, claims.user_id, TODOS, quota)
            await refuse_list(session, claims)
        return todo

    async def append_locked() -> VersionedTodo:
        if not await repository.lock_target_list(session, actor, data.list_id):
            await refuse_list(session, claims)
        return await append()

    if nested:  # in the caller's transaction
        return await place_nested(session, append, append_locked)
    return await place(session, append, append_locked)


def _created(todo: VersionedTodo) -> CreatedTodo:
    return CreatedTodo(todo.body.id, _READ.dump_json(todo.body).decode(), todo.etag)


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
    data: TodoCreate,
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
    values = _column_values(changes)
    stored_needed = stored_writes.needed(changes)
    if values and not stored_needed and ("due_day" in values or "time_zone" in values):
        values.update(day_instants(values["due_day"], values["time_zone"]))
    if values:
        now = utcnow()

        async def write() -> VersionedTodo | None:
            return await repository.update_changed(session, actor, todo_id, values, versions, now)

        async def write_locked() -> VersionedTodo | None:
            if not await repository.lock_owned_list(session, actor, values["list_id"]):
                await refuse_list(session, claims)
            return await write()

        # To another list: its end, computed in the UPDATE (see repository._insert_statement).
        moving = "list_id" in values
        if stored_needed:
            written = await stored_writes.write(
                session, actor, todo_id, values, now, write, write_locked
            )
        else:
            written = await (place(session, write, write_locked) if moving else write())
        if written is not None:
            return written
        if moving:
            await access.authorize(session, claims)
            if not await repository.owns_list(session, actor, values["list_id"]):
                raise InvalidInput(("body", "list_id"), NO_SUCH_LIST)
    # Nothing was written: no such todo of theirs (or a user who may not act), a stale
    # If-Match, or a write that changes no stored value (the UPDATE only matches a row it
    # changes), which answers with the todo as it is: same body, same ETag.
    current = await get_owned(session, claims, todo_id)
    if versions is not None and current.version not in versions:
        raise PreconditionFailed()
    return current


async def move_todo(
    session: AsyncSession,
    claims: AccessClaims,
    todo_id: uuid.UUID,
    data: MoveTodo,
    if_match: str | None,
) -> VersionedTodo:
    """Right after `after` in the list (its own, or list_id): a transaction that locks the
    list, reads the two neighbours and writes a key between them; nobody else moves."""
    actor = Actor.of(claims)
    versions = matching_versions(if_match)

    async def locked() -> VersionedTodo:
        list_id = data.list_id
        if list_id is None:
            list_id = await repository.current_list(session, actor, todo_id)
            if list_id is None:
                await refuse(session, claims, todo_id)
        if not await repository.lock_owned_list(session, actor, list_id):
            await refuse_list(session, claims)
        key = await key_for_move(session, repository.ORDER, list_id, todo_id, data.after)
        moved = await repository.place_at(session, actor, todo_id, list_id, key, versions, utcnow())
        if moved is None:
            await refuse(session, claims, todo_id, if_match=versions is not None)
        return moved

    return await place(session, None, locked)


async def delete_todo(
    session: AsyncSession, claims: AccessClaims, todo_id: uuid.UUID, if_match: str | None
) -> None:
    versions = matching_versions(if_match)
    if not await repository.delete_owned(session, Actor.of(claims), todo_id, versions):
        await refuse(session, claims, todo_id, if_match=versions is not None)


def _column_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Schema fields as stored: the priority as its rank (see models.Priority)."""
    if "priority" in fields:
        fields = {**fields, "priority": Priority[str(fields["priority"])].value}
    return fields
