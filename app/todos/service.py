"""Todo queries. The hot paths select columns, not ORM objects, and fold the check that the
token's user may still act into the same query: one round trip for a read."""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any, cast

from pydantic import TypeAdapter
from sqlalchemy import (
    ColumnElement,
    Delete,
    Select,
    Table,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import ReturningUpdate

from app.auth.security import AccessClaims
from app.auth.service import ACCESS_COLUMNS, authorize, check_access
from app.database import UnitOfWork, utcnow
from app.errors import InvalidInput, NotFound, PreconditionFailed
from app.pagination import after_params, split_page
from app.todos.models import IdempotencyKey, Priority, Todo
from app.todos.pagination import (
    SortOrder,
    decode_todo_cursor,
    encode_todo_cursor,
    query_signature,
)
from app.todos.schemas import TodoCreate, TodoListQuery, TodoPage, TodoRead, TodoStats, TodoUpdate
from app.users.models import User

IDEMPOTENCY_TTL = timedelta(hours=24)
NOT_FOUND_MESSAGE = "Todo not found"
TODO_COLUMNS = (
    Todo.id,
    Todo.title,
    Todo.description,
    Todo.completed,
    Todo.priority,
    Todo.due_date,
    Todo.completed_at,
    Todo.created_at,
    Todo.updated_at,
    Todo.version,
)
# The table itself, for DML without the ORM's bookkeeping (nothing here keeps Todo objects).
_TODOS = cast(Table, Todo.__table__)
_READ = TypeAdapter(TodoRead)


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


def _owned(*conditions: Any) -> Select[*tuple[Any, ...]]:
    """The todos of the token's user (:owner_id), each row carrying what decides whether that
    user may still act (ACCESS_COLUMNS). Scoped by owner in the query itself: another user's
    todo is simply not found."""
    return (
        select(*ACCESS_COLUMNS, *TODO_COLUMNS)
        .join(User, User.id == Todo.owner_id)
        .where(Todo.owner_id == bindparam("owner_id"), *conditions)
    )


# Built once: constructing a statement costs more than running it. For writes the row stays
# locked from the If-Match check to the commit, so no write slips in between.
_OWNED_TODO = _owned(Todo.id == bindparam("todo_id"))
_OWNED_TODO_FOR_UPDATE = _OWNED_TODO.with_for_update(of=Todo)


async def get_owned(
    db: UnitOfWork, claims: AccessClaims, todo_id: uuid.UUID, *, for_update: bool = False
) -> VersionedTodo:
    stmt = _OWNED_TODO_FOR_UPDATE if for_update else _OWNED_TODO
    params = {"owner_id": claims.user_id, "todo_id": todo_id}
    row = (await db.execute(stmt, params)).first()
    if row is None:
        # No row to read the user's state from: a user who may no longer act gets a 401.
        await authorize(db, claims)
        raise NotFound(NOT_FOUND_MESSAGE)
    check_access(claims, row)
    return _versioned(row)


def check_if_match(todo: VersionedTodo, if_match: str | None) -> None:
    if if_match is None:
        return
    tags = {tag.strip() for tag in if_match.split(",")}
    # Strong comparison: a weak tag (W/"...") never matches.
    if "*" not in tags and todo.etag not in tags:
        raise PreconditionFailed()


async def create(db: UnitOfWork, claims: AccessClaims, data: TodoCreate) -> CreatedTodo:
    await authorize(db, claims)
    return _created(await _insert(db, claims.user_id, data))


async def create_idempotent(
    db: UnitOfWork, claims: AccessClaims, data: TodoCreate, key: str
) -> CreatedTodo:
    """Create once per (user, key); a retry with the same body gets the first response back."""
    await authorize(db, claims)
    owner_id = claims.user_id
    request_hash = hashlib.sha256(data.model_dump_json().encode()).hexdigest()
    record = await _remembered(db, owner_id, key)
    if record is not None and record.created_at < utcnow() - IDEMPOTENCY_TTL:
        await db.execute(_forget(owner_id, key))
        record = None
    if record is None:
        todo = await _insert(db, owner_id, data)
        created = _created(todo)
        record = await _remember(db, owner_id, key, request_hash, created)
        if record is None:
            return created
        # A concurrent request with this key won: ours must leave nothing behind.
        await db.execute(delete(_TODOS).where(Todo.id == todo.body.id))
    if record.request_hash != request_hash:
        raise InvalidInput(
            ("header", "Idempotency-Key"),
            "This Idempotency-Key was already used with a different request body",
        )
    return CreatedTodo(record.todo_id, record.response_body, record.etag)


async def _insert(db: UnitOfWork, owner_id: uuid.UUID, data: TodoCreate) -> VersionedTodo:
    now = utcnow()
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "owner_id": owner_id,
        "completed_at": now if data.completed else None,
        "created_at": now,
        "updated_at": now,
        "version": 1,
        **_column_values(data.model_dump()),
    }
    await db.execute(_INSERT, values)
    return VersionedTodo(TodoRead.model_validate(values), 1)


_INSERT = insert(_TODOS)  # the values come as parameters


def _created(todo: VersionedTodo) -> CreatedTodo:
    return CreatedTodo(todo.body.id, _READ.dump_json(todo.body).decode(), todo.etag)


_REMEMBERED = select(
    IdempotencyKey.request_hash,
    IdempotencyKey.todo_id,
    IdempotencyKey.response_body,
    IdempotencyKey.etag,
    IdempotencyKey.created_at,
).where(IdempotencyKey.user_id == bindparam("user_id"), IdempotencyKey.key == bindparam("key"))


async def _remembered(db: UnitOfWork, owner_id: uuid.UUID, key: str) -> Any:
    return (await db.execute(_REMEMBERED, {"user_id": owner_id, "key": key})).first()


def _forget(owner_id: uuid.UUID, key: str) -> Delete:
    return delete(IdempotencyKey).where(
        IdempotencyKey.user_id == owner_id, IdempotencyKey.key == key
    )


async def _remember(
    db: UnitOfWork,
    owner_id: uuid.UUID,
    key: str,
    request_hash: str,
    created: CreatedTodo,
) -> Any:
    """Store the first response under the key, or return the record of whoever stored it first."""
    try:
        # The primary key is the arbiter: on PostgreSQL a concurrent insert of the same key
        # waits here until the first transaction commits, then fails.
        async with db.savepoint():
            await db.execute(
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
        return await _remembered(db, owner_id, key)
    return None


async def update_todo(
    db: UnitOfWork, todo: VersionedTodo, data: TodoUpdate, if_match: str | None
) -> VersionedTodo:
    """PATCH: only the fields the client sent."""
    return await _write(db, todo, data.model_dump(exclude_unset=True), if_match)


async def replace_todo(
    db: UnitOfWork, todo: VersionedTodo, data: TodoCreate, if_match: str | None
) -> VersionedTodo:
    """PUT: every writable field; the omitted ones come back as their defaults."""
    return await _write(db, todo, data.model_dump(), if_match)


async def _write(
    db: UnitOfWork, todo: VersionedTodo, changes: dict[str, Any], if_match: str | None
) -> VersionedTodo:
    # The row is locked (get_owned_todo): the version checked here is the one replaced.
    check_if_match(todo, if_match)
    now = utcnow()
    values = _column_values(changes)
    if "completed" in changes and changes["completed"] != todo.body.completed:
        # completed_at follows completed: set when it turns true, cleared when it turns false.
        values["completed_at"] = now if changes["completed"] else None
    params = {f"new_{name}": value for name, value in values.items()}
    stmt = _update_statement(frozenset(values))
    row = (await db.execute(stmt, {**params, "todo_id": todo.body.id, "now": now})).one()
    return _versioned(row)


@lru_cache(maxsize=128)  # one per set of changed fields: at most 2^6
def _update_statement(fields: frozenset[str]) -> ReturningUpdate[*tuple[Any, ...]]:
    # Parameters are named new_*: SQLAlchemy keeps the plain column names for itself.
    changes: dict[str, Any] = {name: bindparam(f"new_{name}") for name in sorted(fields)}
    return (
        update(_TODOS)
        .where(Todo.id == bindparam("todo_id"))
        .values(**changes, updated_at=bindparam("now"), version=Todo.version + 1)
        .returning(*TODO_COLUMNS)
    )


async def delete_todo(db: UnitOfWork, todo: VersionedTodo, if_match: str | None) -> None:
    check_if_match(todo, if_match)
    await db.execute(delete(_TODOS).where(Todo.id == todo.body.id))


def _column_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Schema fields as stored: the priority as its rank (see models.Priority)."""
    if "priority" in fields:
        fields = {**fields, "priority": Priority[str(fields["priority"])].value}
    return fields


async def list_page(db: UnitOfWork, claims: AccessClaims, query: TodoListQuery) -> TodoPage:
    order = SortOrder.parse(query.sort)
    fingerprint = query_signature(query)
    filters = _filter_params(query)
    params = {"owner_id": claims.user_id, "limit": query.limit + 1, **filters}
    null_tail: bool | None = None  # no cursor
    if query.cursor is not None:
        value, last_id = decode_todo_cursor(query.cursor, order, fingerprint)
        null_tail = value is None
        params.update(after_params((value, last_id)))
    stmt = _list_statement(query.sort, null_tail, frozenset(filters))
    rows = (await db.execute(stmt, params)).all()
    if rows:
        check_access(claims, rows[0])
    else:
        await authorize(db, claims)
    page, last = split_page(rows, query.limit)
    next_cursor = encode_todo_cursor(order, fingerprint, last) if last else None
    return TodoPage(items=[TodoRead.model_validate(row) for row in page], next_cursor=next_cursor)


# Every filter compares with a parameter, so a list statement depends only on which filters,
# which order and which kind of cursor a request has: built once per shape (_list_statement).
_FILTERS: dict[str, ColumnElement[bool]] = {
    "completed": Todo.completed == bindparam("completed"),
    "priority": Todo.priority == bindparam("priority"),
    # The pattern is escaped by _filter_params (LIKE's own autoescape needs a literal).
    "q": Todo.title.icontains(bindparam("q"), escape="/")
    | Todo.description.icontains(bindparam("q"), escape="/"),
    # A todo without a due date matches neither bound (NULL comparisons are never true).
    "due_before": Todo.due_date < bindparam("due_before"),
    "due_after": Todo.due_date > bindparam("due_after"),
}


def _filter_params(query: TodoListQuery) -> dict[str, Any]:
    params: dict[str, Any] = {
        "completed": query.completed,
        "priority": None if query.priority is None else Priority[query.priority].value,
        "q": None if query.q is None else _escape_like(query.q),
        "due_before": query.due_before,
        "due_after": query.due_after,
    }
    return {name: value for name, value in params.items() if value is not None}


def _escape_like(text: str) -> str:
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


@lru_cache(maxsize=1024)  # every shape there is: 32 filter sets x 10 orders x 3 cursor kinds
def _list_statement(
    sort: str, null_tail: bool | None, filters: frozenset[str]
) -> Select[*tuple[Any, ...]]:
    order = SortOrder.parse(sort)
    stmt = _owned(*(_FILTERS[name] for name in sorted(filters)))
    if null_tail is not None:
        stmt = stmt.where(order.after(null_tail))
    return stmt.order_by(*order.order_by()).limit(bindparam("limit"))


async def stats(db: UnitOfWork, claims: AccessClaims) -> TodoStats:
    await authorize(db, claims)
    open_ = Todo.completed.is_(False)
    overdue = open_ & (Todo.due_date < utcnow())
    result = await db.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((Todo.completed, 1), else_=0)), 0),
            func.coalesce(func.sum(case((overdue, 1), else_=0)), 0),
        ).where(Todo.owner_id == claims.user_id)
    )
    total, completed, overdue_count = result.one()
    return TodoStats(
        total=total, completed=completed, open=total - completed, overdue=overdue_count
    )
