"""Todos: every read and every write is one Core statement where a request allows it.

Each statement is scoped to the token's user (owner_id) and carries the access rule
(app.accounts.access.ADMITTED), so reading a todo is one round trip, and so is creating, changing
or deleting one: a single statement needs no BEGIN and COMMIT around it. If-Match is a
condition of the UPDATE or DELETE itself (optimistic concurrency), so no row is locked
while anything else happens. When a statement finds nothing, _refusal() works out which
answer is due: 401, 404 or 412.
"""

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any, TypeVar, cast

from pydantic import TypeAdapter
from sqlalchemy import (
    ColumnElement,
    Delete,
    Select,
    Table,
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
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningDelete, ReturningInsert, ReturningUpdate

from app import quotas
from app.accounts import access
from app.accounts.security import AccessClaims
from app.database import transaction, utcnow
from app.errors import (
    AppError,
    Conflict,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    Unauthorized,
)
from app.etags import matching_versions, version_matches
from app.lists.models import TodoList
from app.lists.ordering import PLACEMENT_ATTEMPTS, OrderedScope, key_for_move, place
from app.lists.positions import next_position
from app.pagination import after_params, split_page
from app.todos.models import IdempotencyKey, Priority, Todo
from app.todos.pagination import (
    SortOrder,
    decode_todo_cursor,
    encode_todo_cursor,
    query_signature,
)
from app.todos.schemas import (
    MoveTodo,
    TodoCreate,
    TodoListQuery,
    TodoPage,
    TodoRead,
    TodoStats,
    TodoUpdate,
)

T = TypeVar("T")
IDEMPOTENCY_TTL = timedelta(hours=24)
NOT_FOUND_MESSAGE = "Todo not found"
NO_SUCH_LIST = "No such list"
# Statements name the table's own columns, not the mapped attributes: an ORM-annotated
# statement takes the ORM's compile and load path even when it runs as plain SQL, about 90
# more Python calls per statement (measured; issue 13's note).
_C = cast(Table, Todo.__table__).c
READ_COLUMNS = (
    _C.id,
    _C.title,
    _C.description,
    _C.completed,
    _C.priority,
    _C.due_date,
    _C.completed_at,
    _C.created_at,
    _C.updated_at,
    _C.list_id,
    _C.position,
    _C.version,
)
# The table itself, for DML without the ORM's bookkeeping (nothing here keeps Todo objects).
_TABLE = cast(Table, Todo.__table__)
_READ = TypeAdapter(TodoRead)
_READ_ALL = TypeAdapter(list[TodoRead])  # a page of rows in one call
# The token's user's todos, while that user may act. Parameters: access.params().
_OWNED = (_C.owner_id == bindparam("user_id"), access.ADMITTED)
_THIS_ONE = _C.id == bindparam("todo_id")


@dataclass(frozen=True, slots=True)
class VersionedTodo:
    """A todo as the client sees it, and its version: the strong ETag every write checks."""

    body: TodoRead
    version: int

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


@dataclass(frozen=True, slots=True)
class CreatedTodo:
    """The first response to a create, replayed verbatim to retries with the same key."""

    todo_id: uuid.UUID
    body: str
    etag: str


def _versioned(row: Any) -> VersionedTodo:
    return VersionedTodo(TodoRead.model_validate(row), row.version)


# Built once: constructing a statement costs more than running it.
_GET = select(*READ_COLUMNS).where(*_OWNED, _THIS_ONE)


async def get_owned(
    session: AsyncSession, claims: AccessClaims, todo_id: uuid.UUID
) -> VersionedTodo:
    row = (await session.execute(_GET, {**access.params(claims), "todo_id": todo_id})).first()
    if row is None:
        raise await _refusal(session, claims, todo_id)
    return _versioned(row)


_EXISTS = select(_C.id).where(_C.owner_id == bindparam("user_id"), _THIS_ONE)


async def _refusal(
    session: AsyncSession,
    claims: AccessClaims,
    todo_id: uuid.UUID,
    *,
    if_match: bool = False,
) -> AppError:
    """Why a statement on the token user's todo found nothing: the user may not act (401),
    there is no such todo of theirs (404, also for someone else's), or If-Match failed.
    Without If-Match the statement could only have missed the todo: no need to look again."""
    await access.authorize(session, claims)
    if if_match:
        params = {"user_id": claims.user_id, "todo_id": todo_id}
        if (await session.execute(_EXISTS, params)).first() is not None:
            return PreconditionFailed()
    return NotFound(NOT_FOUND_MESSAGE)


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
        record = await _remembered(session, owner_id, key)
        if record is not None and record.created_at < utcnow() - IDEMPOTENCY_TTL:
            await session.execute(_forget(owner_id, key))
            record = None
        if record is None:
            todo = await _insert(session, claims, data, quota, nested=True)
            created = _created(todo)
            record = await _remember(session, owner_id, key, request_hash, created)
            if record is None:
                return created
            # A concurrent request with this key won: ours must leave nothing behind.
            await session.execute(delete(_TABLE).where(_C.id == todo.body.id))
    if record.request_hash != request_hash:
        raise InvalidInput(
            ("header", "Idempotency-Key"),
            "This Idempotency-Key was already used with a different request body",
        )
    return CreatedTodo(record.todo_id, record.response_body, record.etag)


_INSERTED = (
    "id", "title", "description", "completed", "priority", "due_date", "completed_at",
    "created_at", "updated_at", "version",
)  # fmt: skip


# The list's todo with the largest position, for appending (correlated to the target list).
_LAST = _TABLE.alias("last")
_LIST_END = select(func.max(_LAST.c.position)).where(_LAST.c.list_id == TodoList.id)
_TARGET = {
    True: TodoList.is_default,  # no list_id given: the default list
    False: TodoList.id == bindparam("list_id"),
}


_BELOW_QUOTA = quotas.below_quota(quotas.TODOS)


@lru_cache(maxsize=2)
def _insert_statement(default_list: bool) -> ReturningInsert[*tuple[Any, ...]]:
    # INSERT ... SELECT <the values>, <the list>, <its end> FROM lists WHERE <the user's list,
    # and the user may act>: nothing is inserted otherwise. The position is computed in the
    # statement; a concurrent append that took it too makes one of them fail on the unique
    # (list_id, position), and that one goes again under the list's lock (ordering.place).
    # RETURNING the whole row, read as GET reads it: the 201 is what was stored, so a column
    # missing from _INSERTED shows in the response (and its test), and it costs no round trip.
    values = [bindparam(f"new_{name}", type_=_TABLE.c[name].type) for name in _INSERTED]
    user = bindparam("user_id", type_=_C.owner_id.type)
    rows = select(*values, user, TodoList.id, next_position(_LIST_END.scalar_subquery())).where(
        TodoList.owner_id == user, _TARGET[default_list], access.ADMITTED, _BELOW_QUOTA
    )
    columns = [*_INSERTED, "owner_id", "list_id", "position"]
    return insert(_TABLE).from_select(columns, rows).returning(*READ_COLUMNS)


_LOCK_LIST = {
    default: select(TodoList.id)
    .where(TodoList.owner_id == bindparam("user_id"), target, access.ADMITTED)
    .with_for_update(key_share=True)  # FOR NO KEY UPDATE: todos may still reference it
    for default, target in _TARGET.items()
}


async def _insert(
    session: AsyncSession,
    claims: AccessClaims,
    data: TodoCreate,
    quota: int,
    *,
    nested: bool = False,
) -> VersionedTodo:
    now = utcnow()
    fields = data.model_dump(exclude={"list_id"})
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "completed_at": now if data.completed else None,
        "created_at": now,
        "updated_at": now,
        "version": 1,
        **_column_values(fields),
    }
    params = {f"new_{name}": value for name, value in values.items()}
    params.update(access.params(claims), list_id=data.list_id, **quotas.params(quota))
    default_list = data.list_id is None

    async def append() -> VersionedTodo:
        row = (await session.execute(_insert_statement(default_list), params)).first()
        if row is None:
            await access.authorize(session, claims)
            await quotas.check(session, claims.user_id, quotas.TODOS, quota)
            raise await _no_such_list(session, claims)
        return _versioned(row)

    async def append_locked() -> VersionedTodo:
        if (await session.execute(_LOCK_LIST[default_list], params)).first() is None:
            raise await _no_such_list(session, claims)
        return await append()

    if nested:  # in the caller's transaction
        return await _in_savepoints(session, append, append_locked)
    return await place(session, append, append_locked)


async def _in_savepoints(
    session: AsyncSession,
    append: Callable[[], Awaitable[T]],
    append_locked: Callable[[], Awaitable[T]],
) -> T:
    """An append inside a caller's transaction: a collision undoes only its savepoint, and
    the next attempts take the list's lock first (as ordering.place does). Without that
    fallback, contended keyed creates collided with each other until their retries ran out
    (issue 29: 13 of 300 got 409); under the lock they queue, and only an unlocked append
    that lands in between (and then itself retries under the lock) can collide again."""
    attempt = append
    for _ in range(PLACEMENT_ATTEMPTS):
        try:
            async with session.begin_nested():
                return await attempt()
        except IntegrityError:
            attempt = append_locked
    raise Conflict("The list is busy; try again")


async def _no_such_list(session: AsyncSession, claims: AccessClaims) -> AppError:
    await access.authorize(session, claims)
    # A missing list and another user's are the same answer.
    return InvalidInput(("body", "list_id"), NO_SUCH_LIST)


def _created(todo: VersionedTodo) -> CreatedTodo:
    return CreatedTodo(todo.body.id, _READ.dump_json(todo.body).decode(), todo.etag)


_REMEMBERED = select(
    IdempotencyKey.request_hash,
    IdempotencyKey.todo_id,
    IdempotencyKey.response_body,
    IdempotencyKey.etag,
    IdempotencyKey.created_at,
).where(IdempotencyKey.user_id == bindparam("user_id"), IdempotencyKey.key == bindparam("key"))


async def _remembered(session: AsyncSession, owner_id: uuid.UUID, key: str) -> Any:
    return (await session.execute(_REMEMBERED, {"user_id": owner_id, "key": key})).first()


def _forget(owner_id: uuid.UUID, key: str) -> Delete:
    return delete(IdempotencyKey).where(
        IdempotencyKey.user_id == owner_id, IdempotencyKey.key == key
    )


async def _remember(
    session: AsyncSession,
    owner_id: uuid.UUID,
    key: str,
    request_hash: str,
    created: CreatedTodo,
) -> Any:
    """Store the first response under the key, or return the record of whoever stored it first."""
    try:
        # The primary key is the arbiter: on PostgreSQL a concurrent insert of the same key
        # waits here until the first transaction commits, then fails.
        async with session.begin_nested():
            await session.execute(
                insert(IdempotencyKey).values(
                    user_id=owner_id,
                    key=key,
                    request_hash=request_hash,
                    todo_id=created.todo_id,
                    response_body=created.body,
                    etag=created.etag,
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        return await _remembered(session, owner_id, key)
    return None


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
    values = _column_values(changes)
    versions = matching_versions(if_match)
    if values:
        params = {f"new_{name}": value for name, value in values.items()}
        params.update(access.params(claims), todo_id=todo_id, now=utcnow(), versions=versions)
        stmt = _update_statement(frozenset(values), versions is not None)

        async def write() -> VersionedTodo | None:
            row = (await session.execute(stmt, params)).first()
            return None if row is None else _versioned(row)

        async def write_locked() -> VersionedTodo | None:
            await _lock_list(session, claims, values["list_id"])
            return await write()

        # To another list: its end, computed in the UPDATE (see _insert_statement).
        moving = "list_id" in values
        written = await (place(session, write, write_locked) if moving else write())
        if written is not None:
            return written
        if moving:
            await _check_list(session, claims, values["list_id"])
    # Nothing was written: no such todo of theirs (or a user who may not act), a stale
    # If-Match, or a write that changes no stored value (the UPDATE only matches a row it
    # changes), which answers with the todo as it is: same body, same ETag.
    current = await get_owned(session, claims, todo_id)
    if versions is not None and current.version not in versions:
        raise PreconditionFailed()
    return current


@lru_cache(maxsize=512)  # one per set of changed fields, with or without If-Match: 2^7 x 2
def _update_statement(fields: frozenset[str], if_match: bool) -> ReturningUpdate[*tuple[Any, ...]]:
    # Parameters are named new_*: SQLAlchemy keeps the plain column names for itself.
    new = {name: bindparam(f"new_{name}", type_=_TABLE.c[name].type) for name in sorted(fields)}
    changes: dict[str, Any] = dict(new)
    if "completed" in fields:
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
    changed = or_(*(_TABLE.c[name].is_distinct_from(param) for name, param in new.items()))
    conditions = [*_OWNED, _THIS_ONE, *version_matches(_C.version, if_match), changed]
    if "list_id" in fields:
        # Another list: to its end; the same list: where it is.
        target = new["list_id"]
        end = select(func.max(_LAST.c.position)).where(_LAST.c.list_id == target)
        changes["position"] = case(
            (_C.list_id == target, _C.position),
            else_=next_position(end.scalar_subquery()),
        )
        conditions.append(_owned_list(target))
    stmt = update(_TABLE).where(*conditions)
    return stmt.values(**changes, updated_at=bindparam("now"), version=_C.version + 1).returning(
        *READ_COLUMNS
    )


def _owned_list(list_id: Any) -> ColumnElement[bool]:
    return exists().where(TodoList.id == list_id, TodoList.owner_id == bindparam("user_id"))


_LIST_IS_OWNED = select(_owned_list(bindparam("list_id")))
_LOCK_OWNED_LIST = (
    select(TodoList.id)
    .where(TodoList.id == bindparam("list_id"), TodoList.owner_id == bindparam("user_id"))
    .with_for_update(key_share=True)
)


async def _check_list(session: AsyncSession, claims: AccessClaims, list_id: uuid.UUID) -> None:
    """422 unless the list is one of the user's (401 first if the user may not act)."""
    await access.authorize(session, claims)
    params = {"user_id": claims.user_id, "list_id": list_id}
    if not (await session.execute(_LIST_IS_OWNED, params)).scalar():
        raise InvalidInput(("body", "list_id"), NO_SUCH_LIST)


async def _lock_list(session: AsyncSession, claims: AccessClaims, list_id: uuid.UUID) -> None:
    """Lock one of the user's lists for a placement in it; 422 if it is not one of theirs."""
    params = {"list_id": list_id, "user_id": claims.user_id}
    if (await session.execute(_LOCK_OWNED_LIST, params)).first() is None:
        raise await _no_such_list(session, claims)


TODO_ORDER = OrderedScope(_TABLE, "list_id")
_CURRENT_LIST = select(_C.list_id).where(*_OWNED, _THIS_ONE)


@lru_cache(maxsize=2)
def _move_statement(if_match: bool) -> ReturningUpdate[*tuple[Any, ...]]:
    return (
        update(_TABLE)
        .where(*_OWNED, _THIS_ONE, *version_matches(_C.version, if_match))
        .values(
            list_id=bindparam("new_list_id"),
            position=bindparam("new_position"),
            updated_at=bindparam("now"),
            version=_C.version + 1,
        )
        .returning(*READ_COLUMNS)
    )


async def move_todo(
    session: AsyncSession,
    claims: AccessClaims,
    todo_id: uuid.UUID,
    data: MoveTodo,
    if_match: str | None,
) -> VersionedTodo:
    """Right after `after` in the list (its own, or list_id): a transaction that locks the
    list, reads the two neighbours and writes a key between them; nobody else moves."""
    versions = matching_versions(if_match)
    params = {**access.params(claims), "todo_id": todo_id, "versions": versions}

    async def locked() -> VersionedTodo:
        list_id = data.list_id
        if list_id is None:
            list_id = (await session.execute(_CURRENT_LIST, params)).scalar()
            if list_id is None:
                raise await _refusal(session, claims, todo_id)
        await _lock_list(session, claims, list_id)
        key = await key_for_move(session, TODO_ORDER, list_id, todo_id, data.after)
        params.update(new_list_id=list_id, new_position=key, now=utcnow())
        row = (await session.execute(_move_statement(versions is not None), params)).first()
        if row is None:
            raise await _refusal(session, claims, todo_id, if_match=versions is not None)
        return _versioned(row)

    return await place(session, None, locked)


async def delete_todo(
    session: AsyncSession, claims: AccessClaims, todo_id: uuid.UUID, if_match: str | None
) -> None:
    versions = matching_versions(if_match)
    params = {**access.params(claims), "todo_id": todo_id, "versions": versions}
    stmt = _delete_statement(versions is not None)
    if (await session.execute(stmt, params)).first() is None:
        raise await _refusal(session, claims, todo_id, if_match=versions is not None)


@lru_cache(maxsize=2)
def _delete_statement(if_match: bool) -> ReturningDelete[uuid.UUID]:
    return (
        delete(_TABLE)
        .where(*_OWNED, _THIS_ONE, *version_matches(_C.version, if_match))
        .returning(_C.id)
    )


def _column_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Schema fields as stored: the priority as its rank (see models.Priority)."""
    if "priority" in fields:
        fields = {**fields, "priority": Priority[str(fields["priority"])].value}
    return fields


async def list_page(session: AsyncSession, claims: AccessClaims, query: TodoListQuery) -> TodoPage:
    order = SortOrder.parse(query.sort)
    fingerprint = query_signature(query)
    filters = _filter_params(query)
    params = {**access.params(claims), "limit": query.limit + 1, **filters}
    null_tail: bool | None = None  # no cursor
    if query.cursor is not None:
        value, last_id = decode_todo_cursor(query.cursor, order, fingerprint)
        null_tail = value is None
        params.update(after_params((value, last_id)))
    stmt = _list_statement(query.sort, null_tail, frozenset(filters))
    result = await session.execute(stmt, params)
    columns = tuple(result.keys())
    rows = result.all()
    if not rows:  # nothing of theirs, or a user who may no longer act
        await access.authorize(session, claims)
    page, last = split_page(rows, query.limit)
    next_cursor = encode_todo_cursor(order, fingerprint, last) if last else None
    # Plain dicts, not the rows themselves: pydantic reads a Row field by field through
    # getattr, which cost three times the validation itself (a tenth of a list request's CPU).
    items = _READ_ALL.validate_python([dict(zip(columns, row, strict=True)) for row in page])
    return TodoPage(items=items, next_cursor=next_cursor)


# Every filter compares with a parameter, so a list statement depends only on which filters,
# which order and which kind of cursor a request has: built once per shape (_list_statement).
_FILTERS: dict[str, ColumnElement[bool]] = {
    "completed": _C.completed == bindparam("completed"),
    "priority": _C.priority == bindparam("priority"),
    # The pattern is escaped by _filter_params (LIKE's own autoescape needs a literal).
    "q": _C.title.icontains(bindparam("q"), escape="/")
    | _C.description.icontains(bindparam("q"), escape="/"),
    # A todo without a due date matches neither bound (NULL comparisons are never true).
    "due_before": _C.due_date < bindparam("due_before"),
    "due_after": _C.due_date > bindparam("due_after"),
    "list_id": _C.list_id == bindparam("list_id"),
}


def _filter_params(query: TodoListQuery) -> dict[str, Any]:
    params: dict[str, Any] = {
        "completed": query.completed,
        "priority": None if query.priority is None else Priority[query.priority].value,
        "q": None if query.q is None else _escape_like(query.q),
        "due_before": query.due_before,
        "due_after": query.due_after,
        "list_id": query.list_id,
    }
    return {name: value for name, value in params.items() if value is not None}


def _escape_like(text: str) -> str:
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


@lru_cache(maxsize=1024)  # every shape there is: 32 filter sets x 10 orders x 3 cursor kinds
def _list_statement(
    sort: str, null_tail: bool | None, filters: frozenset[str]
) -> Select[*tuple[Any, ...]]:
    order = SortOrder.parse(sort)
    stmt = select(*READ_COLUMNS).where(*_OWNED, *(_FILTERS[name] for name in sorted(filters)))
    if null_tail is not None:
        stmt = stmt.where(order.after(null_tail))
    return stmt.order_by(*order.order_by()).limit(bindparam("limit"))


_OPEN = _C.completed.is_(False)
_STATS = select(
    access.ADMITTED,
    func.count(),
    func.coalesce(func.sum(case((_C.completed, 1), else_=0)), 0),
    func.coalesce(func.sum(case((_OPEN & (_C.due_date < bindparam("now")), 1), else_=0)), 0),
).where(_C.owner_id == bindparam("user_id"))


async def stats(session: AsyncSession, claims: AccessClaims) -> TodoStats:
    params = {**access.params(claims), "now": utcnow()}
    admitted, total, completed, overdue = (await session.execute(_STATS, params)).one()
    if not admitted:
        raise Unauthorized()
    return TodoStats(total=total, completed=completed, open=total - completed, overdue=overdue)
