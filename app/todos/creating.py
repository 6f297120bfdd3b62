"""Creating a todo (the decisions; statements: app.todos.repository): at the end of its list,
under an Idempotency-Key (app.idempotency) and with an id the client chose (app.client_ids)."""

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app import client_ids
from app.accounts import authorization
from app.accounts.security import AccessClaims
from app.actor import Actor
from app.database import transaction, utcnow
from app.errors import InvalidInput
from app.idempotency import service as idempotency
from app.idempotency.service import Keyed, Stored
from app.lists.ordering import place, place_nested
from app.quotas import TODOS, check
from app.todos import labels_repository, recurring, repository, subtasks
from app.todos.dates import day_instants
from app.todos.repository import VersionedTodo
from app.todos.schemas import TodoCreate
from app.todos.service import atomic, column_values, refuse_list, stored


async def create(
    session: AsyncSession, claims: AccessClaims, data: TodoCreate, quota: int, keyed: Keyed | None
) -> Stored:
    """At the end of the list; 403 once the account holds `quota` todos (app.quotas)."""
    if keyed is None:
        return await _create(session, claims, data, quota, nested=False)
    # Without an id or a parent, the body as the release before hashed it
    # (app.idempotency.fingerprint).
    body = data.model_dump_json(
        exclude=_unset_new_fields(data) | ({"id"} if data.id is None else set())
    )
    return await idempotency.once(
        session, claims, keyed, body, lambda: _create(session, claims, data, quota, nested=True)
    )


async def _create(
    session: AsyncSession, claims: AccessClaims, data: TodoCreate, quota: int, *, nested: bool
) -> Stored:
    object_id = data.id
    if object_id is None:
        return stored(await _insert(session, claims, data, quota, uuid.uuid4(), nested=nested))
    actor = Actor.of(claims)

    async def existing() -> Stored | None:
        todo = await repository.get(session, actor, object_id)
        return None if todo is None else stored(todo)

    async def insert() -> Stored:
        return stored(await _insert(session, claims, data, quota, object_id, nested=True))

    async def create_once() -> Stored:
        body = data.model_dump_json(exclude=_unset_new_fields(data))
        return await client_ids.create_once(
            session, claims, object_id, "todo", body, existing, insert
        )

    if nested:  # in the caller's transaction
        return await create_once()
    async with transaction(session):
        return await create_once()


async def _insert(
    session: AsyncSession,
    claims: AccessClaims,
    data: TodoCreate,
    quota: int,
    todo_id: uuid.UUID,
    *,
    nested: bool,
) -> VersionedTodo:
    actor, now = Actor.of(claims), utcnow()
    values: dict[str, Any] = {
        "id": todo_id,
        "completed_at": now if data.completed else None,
        "created_at": now,
        "updated_at": now,
        "version": 1,
        **column_values(data.model_dump(exclude={"id", "list_id"})),
        **day_instants(data.due_day, data.time_zone),
    }
    recurring.on_create(values)

    list_id = data.list_id

    async def append() -> VersionedTodo:
        todo = await repository.insert_at_end(session, actor, values, list_id, quota)
        if todo is None:
            await authorization.authorize(session, claims)
            await check(session, claims.user_id, TODOS, quota)
            await refuse_list(session, claims)
        if data.labels:  # in the transaction that inserted the todo (labels_repository)
            await labels_repository.index(session, actor, todo.body.id, data.labels, new=True)
        return todo

    async def append_locked() -> VersionedTodo:
        nonlocal list_id
        if data.parent_id is not None:
            # Under the parent's lock (app.todos.subtasks), into the parent's list.
            list_id = await subtasks.parent_for_create(session, actor, data.parent_id, list_id)
            if list_id is None:
                await authorization.authorize(session, claims)
                raise InvalidInput(subtasks.PARENT, subtasks.NO_SUCH_PARENT)
        if not await repository.lock_target_list(session, actor, list_id):
            await refuse_list(session, claims)
        return await append()

    # A subtask always takes the locks; a top-level todo first tries one statement.
    top_level = data.parent_id is None
    if nested:  # in the caller's transaction
        return await place_nested(session, append if top_level else None, append_locked)
    # Without labels, one statement; with them, two that commit together.
    at_once = atomic(session, append, bool(data.labels))
    return await place(session, at_once if top_level else None, append_locked)


def _unset_new_fields(data: TodoCreate) -> set[str]:
    """Fields newer than the release before, left at their defaults: out of the body's hash,
    so that a retry across an upgrade is still the same request."""
    unset = {name for name in _NEWER_NULLABLE if getattr(data, name) is None}
    return unset | ({"labels"} if not data.labels else set())


# TodoCreate's fields the release before did not have (issue 27), nullable.
_NEWER_NULLABLE = ("parent_id", "due_day", "time_zone", "remind_at", "recurrence")
