"""Lists: owner-scoped Core statements, as in app.todos.service.

Creating a list is one statement that computes its position (the end of the user's lists)
itself; moving one is a short transaction that locks the user's list order first (see
app.lists.ordering). The default list is made with the account by the database (a trigger on
users, so the release before this one gets it right too) and is never deleted.
"""

import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from pydantic import TypeAdapter
from sqlalchemy import (
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningDelete, ReturningUpdate

from app import quotas
from app.accounts import access
from app.accounts.models import User
from app.accounts.security import AccessClaims
from app.database import utcnow
from app.errors import AppError, Conflict, NotFound, PreconditionFailed, Unauthorized
from app.etags import matching_versions, version_matches
from app.lists.models import TodoList
from app.lists.ordering import OrderedScope, key_for_move, place
from app.lists.positions import next_position
from app.lists.schemas import ListCreate, ListListQuery, ListPage, ListRead, ListUpdate, MoveList
from app.pagination import (
    after_params,
    bad_cursor,
    decode_cursor,
    encode_cursor,
    keyset_after,
    split_page,
)

NOT_FOUND_MESSAGE = "List not found"
DEFAULT_LIST_UNDELETABLE = "The default list cannot be deleted"
READ_COLUMNS = (
    TodoList.id,
    TodoList.name,
    TodoList.position,
    TodoList.is_default,
    TodoList.created_at,
    TodoList.updated_at,
    TodoList.version,
)
_TABLE = cast(Table, TodoList.__table__)
_READ_ALL = TypeAdapter(list[ListRead])
_OWNED = (TodoList.owner_id == bindparam("user_id"), access.ADMITTED)
_THIS_ONE = TodoList.id == bindparam("list_id")
ORDER = OrderedScope(_TABLE, "owner_id")
_LISTS_CURSOR = "lists"


@dataclass(frozen=True, slots=True)
class VersionedList:
    body: ListRead
    version: int

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def _versioned(row: Any) -> VersionedList:
    return VersionedList(ListRead.model_validate(row), row.version)


_GET = select(*READ_COLUMNS).where(*_OWNED, _THIS_ONE)
_EXISTS = select(TodoList.is_default).where(TodoList.owner_id == bindparam("user_id"), _THIS_ONE)


async def get_owned(
    session: AsyncSession, claims: AccessClaims, list_id: uuid.UUID
) -> VersionedList:
    row = (await session.execute(_GET, {**access.params(claims), "list_id": list_id})).first()
    if row is None:
        raise await _refusal(session, claims, list_id)
    return _versioned(row)


async def _refusal(
    session: AsyncSession,
    claims: AccessClaims,
    list_id: uuid.UUID,
    *,
    if_match: bool = False,
    deleting: bool = False,
) -> AppError:
    """Why a statement on the user's list found nothing: 401, 404 (also another user's),
    412 for a failed If-Match, 409 for deleting the default list."""
    await access.authorize(session, claims)
    if if_match or deleting:
        params = {"user_id": claims.user_id, "list_id": list_id}
        is_default = (await session.execute(_EXISTS, params)).scalar()
        if deleting and is_default:
            return Conflict(DEFAULT_LIST_UNDELETABLE)
        if if_match and is_default is not None:
            return PreconditionFailed()
    return NotFound(NOT_FOUND_MESSAGE)


def _insert_statement() -> Any:
    last = select(func.max(TodoList.position)).where(TodoList.owner_id == bindparam("user_id"))
    values = select(
        bindparam("new_id", type_=TodoList.id.type),
        bindparam("user_id", type_=TodoList.owner_id.type),
        bindparam("new_name", type_=TodoList.name.type),
        next_position(last.scalar_subquery()),
        literal(False),
        bindparam("now", type_=TodoList.created_at.type),
        bindparam("now", type_=TodoList.updated_at.type),
        literal(1),
    ).where(access.ADMITTED, quotas.below_quota(quotas.LISTS))
    columns = [
        "id",
        "owner_id",
        "name",
        "position",
        "is_default",
        "created_at",
        "updated_at",
        "version",
    ]
    return insert(_TABLE).from_select(columns, values).returning(*READ_COLUMNS)


_INSERT = _insert_statement()
# The user's list order, locked for a placement: the user's row (FOR NO KEY UPDATE does not
# block inserts that reference the user), only while the user may act.
_LOCK_ORDER = select(User.id).where(access.ADMITS).with_for_update(key_share=True)


async def create(
    session: AsyncSession, claims: AccessClaims, data: ListCreate, quota: int
) -> VersionedList:
    """At the end of the user's lists; 403 once the account holds `quota` (app.quotas)."""
    params = {
        **access.params(claims),
        **quotas.params(quota),
        "new_id": uuid.uuid4(),
        "new_name": data.name,
        "now": utcnow(),
    }

    async def insert_at_end() -> VersionedList:
        row = (await session.execute(_INSERT, params)).first()
        if row is None:
            await access.authorize(session, claims)
            await quotas.check(session, claims.user_id, quotas.LISTS, quota)
            raise Unauthorized()  # unreachable unless the user changed in between
        return _versioned(row)

    async def locked() -> VersionedList:
        await _lock_order(session, claims)
        return await insert_at_end()

    return await place(session, insert_at_end, locked)


async def _lock_order(session: AsyncSession, claims: AccessClaims) -> None:
    if (await session.execute(_LOCK_ORDER, access.params(claims))).first() is None:
        raise Unauthorized()


async def rename(
    session: AsyncSession,
    claims: AccessClaims,
    list_id: uuid.UUID,
    data: ListUpdate,
    if_match: str | None,
) -> VersionedList:
    versions = matching_versions(if_match)
    params = {
        **access.params(claims),
        "list_id": list_id,
        "versions": versions,
        "new_name": data.name,
    }
    params["now"] = utcnow()
    row = (await session.execute(_rename_statement(versions is not None), params)).first()
    if row is not None:
        return _versioned(row)
    # Nothing changed: the same name (a no-op keeps its ETag and updated_at), or a refusal.
    current = await get_owned(session, claims, list_id)
    if versions is not None and current.version not in versions:
        raise PreconditionFailed()
    if current.body.name != data.name:  # changed and renamed back meanwhile: try again
        return await rename(session, claims, list_id, data, if_match)
    return current


@lru_cache(maxsize=2)
def _rename_statement(if_match: bool) -> ReturningUpdate[*tuple[Any, ...]]:
    return (
        update(_TABLE)
        .where(
            *_OWNED,
            _THIS_ONE,
            TodoList.name != bindparam("new_name"),
            *version_matches(TodoList.version, if_match),
        )
        .values(
            name=bindparam("new_name"), updated_at=bindparam("now"), version=TodoList.version + 1
        )
        .returning(*READ_COLUMNS)
    )


@lru_cache(maxsize=2)
def _delete_statement(if_match: bool) -> ReturningDelete[uuid.UUID]:
    conditions = (
        *_OWNED,
        _THIS_ONE,
        TodoList.is_default.is_(False),
        *version_matches(TodoList.version, if_match),
    )
    return delete(_TABLE).where(*conditions).returning(TodoList.id)


async def delete_list(
    session: AsyncSession, claims: AccessClaims, list_id: uuid.UUID, if_match: str | None
) -> None:
    """Its todos go with it (ON DELETE CASCADE), and the feed reports each of them."""
    versions = matching_versions(if_match)
    params = {**access.params(claims), "list_id": list_id, "versions": versions}
    if (await session.execute(_delete_statement(versions is not None), params)).first() is None:
        raise await _refusal(session, claims, list_id, if_match=versions is not None, deleting=True)


@lru_cache(maxsize=2)
def _move_statement(if_match: bool) -> ReturningUpdate[*tuple[Any, ...]]:
    return (
        update(_TABLE)
        .where(*_OWNED, _THIS_ONE, *version_matches(TodoList.version, if_match))
        .values(
            position=bindparam("new_position"),
            updated_at=bindparam("now"),
            version=TodoList.version + 1,
        )
        .returning(*READ_COLUMNS)
    )


async def move(
    session: AsyncSession,
    claims: AccessClaims,
    list_id: uuid.UUID,
    data: MoveList,
    if_match: str | None,
) -> VersionedList:
    versions = matching_versions(if_match)

    async def locked() -> VersionedList:
        await _lock_order(session, claims)
        key = await key_for_move(session, ORDER, claims.user_id, list_id, data.after)
        params = {**access.params(claims), "list_id": list_id, "versions": versions}
        params.update(new_position=key, now=utcnow())
        row = (await session.execute(_move_statement(versions is not None), params)).first()
        if row is None:
            raise await _refusal(session, claims, list_id, if_match=versions is not None)
        return _versioned(row)

    return await place(session, None, locked)


_PAGE = (
    select(*READ_COLUMNS)
    .where(*_OWNED)
    .order_by(TodoList.position, TodoList.id)
    .limit(bindparam("limit"))
)
_PAGE_AFTER = _PAGE.where(keyset_after((TodoList.position, TodoList.id)))


async def list_page(session: AsyncSession, claims: AccessClaims, query: ListListQuery) -> ListPage:
    params: dict[str, Any] = {**access.params(claims), "limit": query.limit + 1}
    stmt = _PAGE
    if query.cursor is not None:
        position, last_id = decode_cursor(query.cursor, _LISTS_CURSOR)
        if type(position) is not str:
            raise bad_cursor()
        params.update(after_params((position, last_id)))
        stmt = _PAGE_AFTER
    rows = (await session.execute(stmt, params)).all()
    if not rows:
        await access.authorize(session, claims)
    page, last = split_page(rows, query.limit)
    next_cursor = encode_cursor(_LISTS_CURSOR, last.position, last.id) if last else None
    return ListPage(
        items=_READ_ALL.validate_python(page, from_attributes=True), next_cursor=next_cursor
    )
