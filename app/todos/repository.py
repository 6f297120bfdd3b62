"""Todos' statements: every read and write of the todos table, each one Core statement.

Each statement is scoped to the actor's user (owner_id) and carries the access rule
(app.accounts.access.ADMITTED), so reading a todo is one round trip, and so is creating, changing
or deleting one: a single statement needs no BEGIN and COMMIT around it. If-Match is a
condition of the UPDATE or DELETE itself (optimistic concurrency). A method that finds nothing
returns None (or False); app.todos.service decides which answer that is. Bind parameter names
live here alone; the actor's come from Actor.params().
"""

import random
import uuid
from datetime import datetime
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import (
    ColumnElement,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningDelete, ReturningInsert, ReturningUpdate

from app import quotas
from app.accounts import access
from app.actor import Actor
from app.etags import version_matches
from app.lists.models import TodoList
from app.lists.ordering import OrderedScope
from app.lists.positions import next_position
from app.todos import fields, recurring
from app.todos.schemas import TodoRead
from app.versioning import Versioned, versioned

_C, _TABLE = fields.C, fields.TABLE
_READ_ALL = TypeAdapter(list[TodoRead])  # a page of rows in one call
# The actor's todos, while its user may act. Parameters: Actor.params().
_OWNED = (_C.owner_id == bindparam("user_id"), access.ADMITTED)
_THIS_ONE = _C.id == bindparam("todo_id")
ORDER = OrderedScope(_TABLE, "list_id")


# A todo and its version (the ETag every write checks).
VersionedTodo = Versioned[TodoRead]


def _versioned(row: Any) -> VersionedTodo | None:
    return versioned(TodoRead, row)


# Built once: constructing a statement costs more than running it.
_GET = select(*fields.READ_COLUMNS).where(*_OWNED, _THIS_ONE)
_EXISTS = select(_C.id).where(_C.owner_id == bindparam("user_id"), _THIS_ONE)


async def get(session: AsyncSession, actor: Actor, todo_id: uuid.UUID) -> VersionedTodo | None:
    params = {**actor.params(), "todo_id": todo_id}
    return _versioned((await session.execute(_GET, params)).first())


async def exists_for(session: AsyncSession, actor: Actor, todo_id: uuid.UUID) -> bool:
    """Whether the user has this todo, whether or not they may act."""
    params = {"user_id": actor.user_id, "todo_id": todo_id}
    return (await session.execute(_EXISTS, params)).first() is not None


# The list's todo with the largest position, for appending (correlated to the target list).
_LAST = _TABLE.alias("last")
_LIST_END = select(func.max(_LAST.c.position)).where(_LAST.c.list_id == TodoList.id)
_TARGET = {
    True: TodoList.is_default,  # no list_id given: the default list
    False: TodoList.id == bindparam("list_id"),
}
_BELOW_QUOTA = quotas.below_quota(quotas.TODOS)
# An append's key is the next integer after the list's last plus a fraction of the request's
# own (append_suffix): concurrent appends into one list computed the same max + 1 and all but
# one collided on (list_id, position), went again under the list's lock, and collided with
# the next unlocked ones (create_crowded ran at half create_todo's rate). With 900 fractions,
# two concurrent appends meet once in 900, and the unique constraint still arbitrates that.
_SUFFIX = bindparam("append_suffix", type_=_C.position.type)


def append_suffix() -> str:
    """Three digits, not ending in 0 (a key has no trailing zeros: app.lists.positions)."""
    number = random.randrange(1, 1000)  # noqa: S311 - spreads keys, no secret
    return f"{number + 1 if number % 10 == 0 else number:03d}"


def _appended(end: Any) -> ColumnElement[str]:
    return next_position(end).op("||")(_SUFFIX)


@lru_cache(maxsize=2)
def _insert_statement(default_list: bool) -> ReturningInsert[*tuple[Any, ...]]:
    # INSERT ... SELECT <the values>, <the list>, <its end> FROM lists WHERE <the user's list,
    # and the user may act, below the quota>: nothing is inserted otherwise. The position is
    # computed in the statement; a concurrent append that took it too makes one of them fail
    # on the unique (list_id, position), and that one goes again under the list's lock.
    # RETURNING the whole row, read as GET reads it: the 201 is what was stored.
    values = [bindparam(f"new_{name}", type_=_C[name].type) for name in fields.INSERTED]
    user = bindparam("user_id", type_=_C.owner_id.type)
    rows = select(*values, user, TodoList.id, _appended(_LIST_END.scalar_subquery())).where(
        TodoList.owner_id == user, _TARGET[default_list], access.ADMITTED, _BELOW_QUOTA
    )
    columns = [*fields.INSERTED, "owner_id", "list_id", "position"]
    return insert(_TABLE).from_select(columns, rows).returning(*fields.READ_COLUMNS)


async def insert_at_end(
    session: AsyncSession,
    actor: Actor,
    values: dict[str, Any],
    list_id: uuid.UUID | None,
    quota: int,
) -> VersionedTodo | None:
    """A todo with `values` (fields.INSERTED) at the end of the list (None: the default one);
    None if the list is not the user's, the user may not act, or the quota is reached."""
    params = {f"new_{name}": value for name, value in values.items()}
    params.update(actor.params(), list_id=list_id, append_suffix=append_suffix())
    params.update(quotas.params(quota))
    row = (await session.execute(_insert_statement(list_id is None), params)).first()
    return _versioned(row)


_LOCK_TARGET = {
    default: select(TodoList.id)
    .where(TodoList.owner_id == bindparam("user_id"), target, access.ADMITTED)
    .with_for_update(key_share=True)  # FOR NO KEY UPDATE: todos may still reference it
    for default, target in _TARGET.items()
}


async def lock_target_list(session: AsyncSession, actor: Actor, list_id: uuid.UUID | None) -> bool:
    """Lock the list an insert goes to (None: the default one), while the user may act."""
    params = {**actor.params(), "list_id": list_id}
    return (await session.execute(_LOCK_TARGET[list_id is None], params)).first() is not None


def _owned_list(list_id: Any) -> ColumnElement[bool]:
    return exists().where(TodoList.id == list_id, TodoList.owner_id == bindparam("user_id"))


_LIST_IS_OWNED = select(_owned_list(bindparam("list_id")))
_LOCK_OWNED_LIST = (
    select(TodoList.id)
    .where(TodoList.id == bindparam("list_id"), TodoList.owner_id == bindparam("user_id"))
    .with_for_update(key_share=True)
)


async def owns_list(session: AsyncSession, actor: Actor, list_id: uuid.UUID) -> bool:
    params = {"user_id": actor.user_id, "list_id": list_id}
    return bool((await session.execute(_LIST_IS_OWNED, params)).scalar())


async def lock_owned_list(session: AsyncSession, actor: Actor, list_id: uuid.UUID) -> bool:
    """Lock one of the user's lists for a placement in it; False if it is not one of theirs."""
    params = {"user_id": actor.user_id, "list_id": list_id}
    return (await session.execute(_LOCK_OWNED_LIST, params)).first() is not None


@lru_cache(maxsize=512)  # one per set of changed fields, with or without If-Match
def _update_statement(names: frozenset[str], if_match: bool) -> ReturningUpdate[*tuple[Any, ...]]:
    # Parameters are named new_*: SQLAlchemy keeps the plain column names for itself.
    new = {name: bindparam(f"new_{name}", type_=_C[name].type) for name in sorted(names)}
    changes: dict[str, Any] = dict(new)
    if "completed" in names:
        # completed_at follows completed: set when it turns true, cleared when it turns
        # false, kept when it stays (SET expressions see the row as it was).
        completed = new["completed"]
        changes["completed_at"] = case(
            (_C.completed == completed, _C.completed_at),
            (completed, bindparam("now", type_=_C.completed_at.type)),
            else_=None,
        )
    # Only a row that some value changes: a write of the current values leaves version and
    # updated_at alone, so other clients' ETags stay valid (completed_at follows completed).
    changed = or_(*(_C[name].is_distinct_from(param) for name, param in new.items()))
    conditions = [*_OWNED, _THIS_ONE, *version_matches(_C.version, if_match), changed]
    if "list_id" in names:
        # Another list: to its end; the same list: where it is.
        target = new["list_id"]
        end = select(func.max(_LAST.c.position)).where(_LAST.c.list_id == target)
        changes["position"] = case(
            (_C.list_id == target, _C.position),
            else_=_appended(end.scalar_subquery()),
        )
        conditions.append(_owned_list(target))
    stmt = update(_TABLE).where(*conditions)
    return stmt.values(**changes, updated_at=bindparam("now"), version=_C.version + 1).returning(
        *fields.READ_COLUMNS
    )


async def update_changed(
    session: AsyncSession,
    actor: Actor,
    todo_id: uuid.UUID,
    values: dict[str, Any],
    versions: list[int] | None,
    now: datetime,
) -> VersionedTodo | None:
    """Write `values` (a list_id: to that list's end) if one of them changes the row and
    If-Match's `versions` (None: any) admit it; None otherwise."""
    params = {f"new_{name}": value for name, value in values.items()}
    params.update(actor.params(), todo_id=todo_id, now=now, versions=versions)
    params["append_suffix"] = append_suffix()
    stmt = _update_statement(frozenset(values), versions is not None)
    return _versioned((await session.execute(stmt, params)).first())


# What a write that depends on stored fields reads of them (app.todos.stored_writes): the
# due fields (a PATCH of one due needs the others) and a recurring todo's series. Locked until
# the write commits, so what it derives is from the values the row keeps.
STORED_FIELDS = tuple(dict.fromkeys(("due_day", "due_date", "time_zone", *recurring.STORED)))
_LOCK_STORED = (
    select(*(_C[name] for name in STORED_FIELDS))
    .where(*_OWNED, _THIS_ONE)
    .with_for_update(key_share=True)  # FOR NO KEY UPDATE: the lock the UPDATE itself takes
)


async def lock_stored(
    session: AsyncSession, actor: Actor, todo_id: uuid.UUID
) -> dict[str, Any] | None:
    """The todo's STORED_FIELDS, its row locked for the transaction; None if there is none."""
    params = {**actor.params(), "todo_id": todo_id}
    row = (await session.execute(_LOCK_STORED, params)).first()
    return None if row is None else dict(zip(STORED_FIELDS, row, strict=True))


_CURRENT_LIST = select(_C.list_id).where(*_OWNED, _THIS_ONE)


async def current_list(session: AsyncSession, actor: Actor, todo_id: uuid.UUID) -> uuid.UUID | None:
    params = {**actor.params(), "todo_id": todo_id}
    list_id: uuid.UUID | None = (await session.execute(_CURRENT_LIST, params)).scalar()
    return list_id


@lru_cache(maxsize=2)
def _move_statement(if_match: bool) -> ReturningUpdate[*tuple[Any, ...]]:
    return (
        update(_TABLE)
        .where(*_OWNED, _THIS_ONE, *version_matches(_C.version, if_match))
        .values(
            list_id=bindparam("new_list_id"),
            parent_id=bindparam("new_parent_id"),
            position=bindparam("new_position"),
            updated_at=bindparam("now"),
            version=_C.version + 1,
        )
        .returning(*fields.READ_COLUMNS)
    )


async def place_at(
    session: AsyncSession,
    actor: Actor,
    todo_id: uuid.UUID,
    list_id: uuid.UUID,
    parent_id: uuid.UUID | None,
    position: str,
    versions: list[int] | None,
    now: datetime,
) -> VersionedTodo | None:
    params = {**actor.params(), "todo_id": todo_id, "versions": versions}
    params.update(new_list_id=list_id, new_parent_id=parent_id, new_position=position, now=now)
    stmt = _move_statement(versions is not None)
    return _versioned((await session.execute(stmt, params)).first())


@lru_cache(maxsize=2)
def _delete_statement(if_match: bool) -> ReturningDelete[uuid.UUID]:
    return (
        delete(_TABLE)
        .where(*_OWNED, _THIS_ONE, *version_matches(_C.version, if_match))
        .returning(_C.id)
    )


async def delete_owned(
    session: AsyncSession, actor: Actor, todo_id: uuid.UUID, versions: list[int] | None
) -> bool:
    params = {**actor.params(), "todo_id": todo_id, "versions": versions}
    stmt = _delete_statement(versions is not None)
    return (await session.execute(stmt, params)).first() is not None
