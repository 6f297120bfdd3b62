"""Lists' statements: owner-scoped Core statements, one round trip each (as app.todos.repository).

Creating a list is one statement that computes its position (the end of the user's lists)
itself; a placement locks the user's list order first (the user's row). A method that finds
nothing returns None (or False); app.lists.service decides which answer that is.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import bindparam, delete, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningDelete, ReturningUpdate

from app import quotas
from app.accounts import access
from app.accounts.models import User
from app.actor import Actor
from app.etags import version_matches
from app.lists import fields
from app.lists.ordering import OrderedScope
from app.lists.positions import next_position
from app.lists.schemas import ListRead
from app.pagination import after_params, keyset_after, split_page
from app.versioning import Versioned, versioned

_C, _TABLE = fields.C, fields.TABLE
_READ_ALL = TypeAdapter(list[ListRead])
_OWNED = (_C.owner_id == bindparam("user_id"), access.ADMITTED)
_THIS_ONE = _C.id == bindparam("list_id")
ORDER = OrderedScope(_TABLE, "owner_id")


# A list and its version (the ETag every write checks).
VersionedList = Versioned[ListRead]


def _versioned(row: Any) -> VersionedList | None:
    return versioned(ListRead, row)


_GET = select(*fields.READ_COLUMNS).where(*_OWNED, _THIS_ONE)
_IS_DEFAULT = select(_C.is_default).where(_C.owner_id == bindparam("user_id"), _THIS_ONE)


async def get(session: AsyncSession, actor: Actor, list_id: uuid.UUID) -> VersionedList | None:
    return _versioned((await session.execute(_GET, {**actor.params(), "list_id": list_id})).first())


async def is_default(session: AsyncSession, actor: Actor, list_id: uuid.UUID) -> bool | None:
    """Whether the user's list is their default one; None: no such list of theirs."""
    params = {"user_id": actor.user_id, "list_id": list_id}
    found: bool | None = (await session.execute(_IS_DEFAULT, params)).scalar()
    return found


def _insert_statement() -> Any:
    last = select(func.max(_C.position)).where(_C.owner_id == bindparam("user_id"))
    values = select(
        bindparam("new_id", type_=_C.id.type),
        bindparam("user_id", type_=_C.owner_id.type),
        *(bindparam(f"new_{name}", type_=_C[name].type) for name in fields.WRITABLE),
        next_position(last.scalar_subquery()),
        literal(False),
        bindparam("now", type_=_C.created_at.type),
        bindparam("now", type_=_C.updated_at.type),
        literal(1),
    ).where(access.ADMITTED, quotas.below_quota(quotas.LISTS))
    columns = ["id", "owner_id", *fields.WRITABLE]
    columns += ["position", "is_default", "created_at", "updated_at", "version"]
    return insert(_TABLE).from_select(columns, values).returning(*fields.READ_COLUMNS)


_INSERT = _insert_statement()
# The user's list order, locked for a placement: the user's row (FOR NO KEY UPDATE does not
# block inserts that reference the user), only while the user may act.
_LOCK_ORDER = select(User.id).where(access.ADMITS).with_for_update(key_share=True)


async def insert_at_end(
    session: AsyncSession,
    actor: Actor,
    values: dict[str, Any],
    quota: int,
    now: datetime,
    list_id: uuid.UUID,
) -> VersionedList | None:
    """A list named `list_id` with `values` (fields.WRITABLE) at the end of the user's; None
    if the user may not act or holds `quota` lists."""
    params = {f"new_{name}": value for name, value in values.items()}
    params.update(actor.params(), **quotas.params(quota), new_id=list_id, now=now)
    return _versioned((await session.execute(_INSERT, params)).first())


async def lock_order(session: AsyncSession, actor: Actor) -> bool:
    """Lock the user's list order; False if the user may not act."""
    return (await session.execute(_LOCK_ORDER, actor.params())).first() is not None


@lru_cache(maxsize=2)
def _rename_statement(if_match: bool) -> ReturningUpdate[*tuple[Any, ...]]:
    return (
        update(_TABLE)
        .where(
            *_OWNED,
            _THIS_ONE,
            _C.name != bindparam("new_name"),
            *version_matches(_C.version, if_match),
        )
        .values(name=bindparam("new_name"), updated_at=bindparam("now"), version=_C.version + 1)
        .returning(*fields.READ_COLUMNS)
    )


async def rename(
    session: AsyncSession,
    actor: Actor,
    list_id: uuid.UUID,
    name: str,
    versions: list[int] | None,
    now: datetime,
) -> VersionedList | None:
    """None unless the name changes and If-Match's `versions` (None: any) admit it."""
    params = {**actor.params(), "list_id": list_id, "versions": versions, "new_name": name}
    params["now"] = now
    return _versioned(
        (await session.execute(_rename_statement(versions is not None), params)).first()
    )


@lru_cache(maxsize=2)
def _delete_statement(if_match: bool) -> ReturningDelete[uuid.UUID]:
    conditions = (
        *_OWNED,
        _THIS_ONE,
        _C.is_default.is_(False),
        *version_matches(_C.version, if_match),
    )
    return delete(_TABLE).where(*conditions).returning(_C.id)


async def delete_owned(
    session: AsyncSession, actor: Actor, list_id: uuid.UUID, versions: list[int] | None
) -> bool:
    """Deletes a list that is not the default one (its todos go with it: ON DELETE CASCADE)."""
    params = {**actor.params(), "list_id": list_id, "versions": versions}
    return (
        await session.execute(_delete_statement(versions is not None), params)
    ).first() is not None


@lru_cache(maxsize=2)
def _move_statement(if_match: bool) -> ReturningUpdate[*tuple[Any, ...]]:
    return (
        update(_TABLE)
        .where(*_OWNED, _THIS_ONE, *version_matches(_C.version, if_match))
        .values(
            position=bindparam("new_position"), updated_at=bindparam("now"), version=_C.version + 1
        )
        .returning(*fields.READ_COLUMNS)
    )


async def place_at(
    session: AsyncSession,
    actor: Actor,
    list_id: uuid.UUID,
    position: str,
    versions: list[int] | None,
    now: datetime,
) -> VersionedList | None:
    params = {**actor.params(), "list_id": list_id, "versions": versions}
    params.update(new_position=position, now=now)
    return _versioned(
        (await session.execute(_move_statement(versions is not None), params)).first()
    )


_PAGE = (
    select(*fields.READ_COLUMNS)
    .where(*_OWNED)
    .order_by(_C.position, _C.id)
    .limit(bindparam("limit"))
)
_PAGE_AFTER = _PAGE.where(keyset_after((_C.position, _C.id)))


@dataclass(frozen=True, slots=True)
class ListPageRows:
    items: list[ListRead]
    last: Any  # the page's last row (position, id, ...), when another page follows


async def page(
    session: AsyncSession, actor: Actor, after: tuple[str, uuid.UUID] | None, limit: int
) -> ListPageRows:
    """Up to `limit` lists in the user's order, after (position, id) when there is one."""
    params: dict[str, Any] = {**actor.params(), "limit": limit + 1}
    stmt = _PAGE
    if after is not None:
        params.update(after_params(after))
        stmt = _PAGE_AFTER
    rows, last = split_page((await session.execute(stmt, params)).all(), limit)
    return ListPageRows(_READ_ALL.validate_python(rows, from_attributes=True), last)
