"""Lists: the decisions (statements: app.lists.repository). Creating goes to the end of the
user's lists, retried under the user's list-order lock on a collision (app.lists.ordering);
renaming to the same name is a no-op that keeps the ETag; refuse() says which answer is due
when a statement finds nothing. The default list is made with the account by the database (a
trigger on users, so the release before this one gets it right too) and is never deleted.
"""

import uuid
from typing import NoReturn

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from app import client_ids, quotas
from app.accounts import authorization
from app.accounts.security import AccessClaims
from app.actor import Actor
from app.database import transaction, utcnow
from app.errors import Conflict, NotFound, PreconditionFailed, Unauthorized
from app.etags import matching_versions
from app.idempotency import service as idempotency
from app.idempotency.service import Keyed, Stored
from app.lists import repository
from app.lists.ordering import key_for_move, place, place_nested
from app.lists.repository import VersionedList
from app.lists.schemas import (
    ListCreate,
    ListListQuery,
    ListPage,
    ListRead,
    ListUpdate,
    MoveList,
)
from app.pagination import bad_cursor, decode_cursor, encode_cursor

__all__ = ["VersionedList"]

NOT_FOUND_MESSAGE = "List not found"
DEFAULT_LIST_UNDELETABLE = "The default list cannot be deleted"
_LISTS_CURSOR = "lists"
ORDER = repository.ORDER
_READ = TypeAdapter(ListRead)


async def refuse(
    session: AsyncSession,
    claims: AccessClaims,
    list_id: uuid.UUID,
    *,
    if_match: bool = False,
    deleting: bool = False,
) -> NoReturn:
    """Why a statement on the user's list found nothing: 401, 404 (also another user's),
    412 for a failed If-Match, 409 for deleting the default list."""
    await authorization.authorize(session, claims)
    if if_match or deleting:
        is_default = await repository.is_default(session, Actor.of(claims), list_id)
        if deleting and is_default:
            raise Conflict(DEFAULT_LIST_UNDELETABLE)
        if if_match and is_default is not None:
            raise PreconditionFailed()
    raise NotFound(NOT_FOUND_MESSAGE)


async def get_owned(
    session: AsyncSession, claims: AccessClaims, list_id: uuid.UUID
) -> VersionedList:
    found = await repository.get(session, Actor.of(claims), list_id)
    if found is None:
        await refuse(session, claims, list_id)
    return found


async def create(
    session: AsyncSession, claims: AccessClaims, data: ListCreate, quota: int, keyed: Keyed | None
) -> Stored:
    """At the end of the user's lists; 403 once the account holds `quota` (app.quotas); with
    an id the client chose, once (app.client_ids); with an Idempotency-Key, once per key."""
    if keyed is None:
        return await _create(session, claims, data, quota, nested=False)
    body = data.model_dump_json()
    return await idempotency.once(
        session, claims, keyed, body, lambda: _create(session, claims, data, quota, nested=True)
    )


async def _create(
    session: AsyncSession, claims: AccessClaims, data: ListCreate, quota: int, *, nested: bool
) -> Stored:
    actor, now = Actor.of(claims), utcnow()
    values = data.model_dump(exclude={"id"})
    list_id = data.id

    async def insert_at_end() -> VersionedList:
        created = await repository.insert_at_end(
            session, actor, values, quota, now, list_id or uuid.uuid4()
        )
        if created is None:
            await authorization.authorize(session, claims)
            await quotas.check(session, claims.user_id, quotas.LISTS, quota)
            raise Unauthorized()  # unreachable unless the user changed in between
        return created

    async def locked() -> VersionedList:
        await _lock_order(session, actor)
        return await insert_at_end()

    if list_id is None:
        if nested:
            return stored(await place_nested(session, insert_at_end, locked))
        return stored(await place(session, insert_at_end, locked))

    async def existing() -> Stored | None:
        found = await repository.get(session, actor, list_id)
        return None if found is None else stored(found)

    async def create_once() -> Stored:
        async def insert() -> Stored:
            return stored(await place_nested(session, insert_at_end, locked))

        body = data.model_dump_json()
        return await client_ids.create_once(
            session, claims, list_id, "list", body, existing, insert
        )

    if nested:  # in the caller's transaction
        return await create_once()
    async with transaction(session):
        return await create_once()


def stored(todo_list: VersionedList) -> Stored:
    """The list as a write's response: its JSON and ETag, as a replay gives them back."""
    return Stored(todo_list.body.id, _READ.dump_json(todo_list.body).decode(), todo_list.etag)


async def _lock_order(session: AsyncSession, actor: Actor) -> None:
    if not await repository.lock_order(session, actor):
        raise Unauthorized()


async def rename(
    session: AsyncSession,
    claims: AccessClaims,
    list_id: uuid.UUID,
    data: ListUpdate,
    if_match: str | None,
) -> VersionedList:
    versions = matching_versions(if_match)
    actor = Actor.of(claims)
    renamed = await repository.rename(session, actor, list_id, data.name, versions, utcnow())
    if renamed is not None:
        return renamed
    # Nothing changed: the same name (a no-op keeps its ETag and updated_at), or a refusal.
    current = await get_owned(session, claims, list_id)
    if versions is not None and current.version not in versions:
        raise PreconditionFailed()
    if current.body.name != data.name:  # changed and renamed back meanwhile: try again
        return await rename(session, claims, list_id, data, if_match)
    return current


async def delete_list(
    session: AsyncSession, claims: AccessClaims, list_id: uuid.UUID, if_match: str | None
) -> None:
    """Its todos go with it (ON DELETE CASCADE), and the feed reports each of them."""
    versions = matching_versions(if_match)
    if not await repository.delete_owned(session, Actor.of(claims), list_id, versions):
        await refuse(session, claims, list_id, if_match=versions is not None, deleting=True)


async def move(
    session: AsyncSession,
    claims: AccessClaims,
    list_id: uuid.UUID,
    data: MoveList,
    if_match: str | None,
    keyed: Keyed | None,
) -> Stored:
    versions = matching_versions(if_match)
    actor = Actor.of(claims)

    async def locked() -> VersionedList:
        await _lock_order(session, actor)
        key = await key_for_move(session, ORDER, claims.user_id, list_id, data.after)
        moved = await repository.place_at(session, actor, list_id, key, versions, utcnow())
        if moved is None:
            await refuse(session, claims, list_id, if_match=versions is not None)
        return moved

    if keyed is None:
        return stored(await place(session, None, locked))

    async def move_once() -> Stored:
        return stored(await place_nested(session, None, locked))

    body = data.model_dump_json() + f"\nIf-Match: {if_match}"
    return await idempotency.once(session, claims, keyed, body, move_once)


async def list_page(session: AsyncSession, claims: AccessClaims, query: ListListQuery) -> ListPage:
    after = None
    if query.cursor is not None:
        position, last_id = decode_cursor(query.cursor, _LISTS_CURSOR)
        if type(position) is not str:
            raise bad_cursor()
        after = (position, last_id)
    found = await repository.page(session, Actor.of(claims), after, query.limit)
    if not found.items:
        await authorization.authorize(session, claims)
    last = found.last
    next_cursor = encode_cursor(_LISTS_CURSOR, last.position, last.id) if last else None
    return ListPage(items=found.items, next_cursor=next_cursor)
