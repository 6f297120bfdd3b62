"""Todo queries. The hot paths select columns, not ORM objects, and fold the check that the
token's user may still act into the same query: one round trip for a read."""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from pydantic import TypeAdapter
from sqlalchemy import Select, Table, bindparam, case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.security import AccessClaims
from app.auth.service import ACCESS_COLUMNS, authorize, check_access
from app.database import utcnow
from app.errors import InvalidInput, NotFound, PreconditionFailed
from app.pagination import split_page
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
    session: AsyncSession, claims: AccessClaims, todo_id: uuid.UUID, *, for_update: bool = False
) -> VersionedTodo:
    stmt = _OWNED_TODO_FOR_UPDATE if for_update else _OWNED_TODO
    params = {"owner_id": claims.user_id, "todo_id": todo_id}
    conn = await session.connection()
    row = (await conn.execute(stmt, params)).first()
    if row is None:
        # No row to read the user's state from: a user who may no longer act gets a 401.
        await authorize(session, claims)
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


async def create(session: AsyncSession, claims: AccessClaims, data: TodoCreate) -> CreatedTodo:
    await authorize(session, claims)
    return _created(await _insert(session, claims.user_id, data))


async def create_idempotent(
    session: AsyncSession, claims: AccessClaims, data: TodoCreate, key: str
) -> CreatedTodo:
    """Create once per (user, key); a retry with the same body gets the first response back."""
    await authorize(session, claims)
    owner_id = claims.user_id
    request_hash = hashlib.sha256(data.model_dump_json().encode()).hexdigest()
    record = await session.get(IdempotencyKey, (owner_id, key))
    if record is not None and record.created_at < utcnow() - IDEMPOTENCY_TTL:
        await session.delete(record)
        await session.flush()
        record = None
    if record is None:
        todo = await _insert(session, owner_id, data)
        created = _created(todo)
        record = await _remember(session, owner_id, key, request_hash, created)
        if record is None:
            return created
        # A concurrent request with this key won: ours must leave nothing behind.
        await session.execute(delete(_TODOS).where(Todo.id == todo.body.id))
    if record.request_hash != request_hash:
        raise InvalidInput(
            ("header", "Idempotency-Key"),
            "This Idempotency-Key was already used with a different request body",
        )
    return CreatedTodo(record.todo_id, record.response_body, record.etag)


async def _insert(session: AsyncSession, owner_id: uuid.UUID, data: TodoCreate) -> VersionedTodo:
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
    await session.execute(insert(_TODOS).values(values))
    return VersionedTodo(TodoRead.model_validate(values), 1)


def _created(todo: VersionedTodo) -> CreatedTodo:
    return CreatedTodo(todo.body.id, _READ.dump_json(todo.body).decode(), todo.etag)


async def _remember(
    session: AsyncSession,
    owner_id: uuid.UUID,
    key: str,
    request_hash: str,
    created: CreatedTodo,
) -> IdempotencyKey | None:
    """Store the first response under the key, or return the record of whoever stored it first."""
    try:
        # The primary key is the arbiter: on PostgreSQL a concurrent insert of the same key
        # waits here until the first transaction commits, then fails.
        async with session.begin_nested():
            session.add(
                IdempotencyKey(
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
        return await session.get(IdempotencyKey, (owner_id, key))
    return None


async def update_todo(
    session: AsyncSession, todo: VersionedTodo, data: TodoUpdate, if_match: str | None
) -> VersionedTodo:
    """PATCH: only the fields the client sent."""
    return await _write(session, todo, data.model_dump(exclude_unset=True), if_match)


async def replace_todo(
    session: AsyncSession, todo: VersionedTodo, data: TodoCreate, if_match: str | None
) -> VersionedTodo:
    """PUT: every writable field; the omitted ones come back as their defaults."""
    return await _write(session, todo, data.model_dump(), if_match)


async def _write(
    session: AsyncSession, todo: VersionedTodo, changes: dict[str, Any], if_match: str | None
) -> VersionedTodo:
    # The row is locked (get_owned_todo): the version checked here is the one replaced.
    check_if_match(todo, if_match)
    now = utcnow()
    values = _column_values(changes)
    if "completed" in changes and changes["completed"] != todo.body.completed:
        # completed_at follows completed: set when it turns true, cleared when it turns false.
        values["completed_at"] = now if changes["completed"] else None
    stmt = (
        update(_TODOS)
        .where(Todo.id == todo.body.id)
        .values(**values, updated_at=now, version=Todo.version + 1)
        .returning(*TODO_COLUMNS)
    )
    return _versioned((await session.execute(stmt)).one())


async def delete_todo(session: AsyncSession, todo: VersionedTodo, if_match: str | None) -> None:
    check_if_match(todo, if_match)
    await session.execute(delete(_TODOS).where(Todo.id == todo.body.id))


def _column_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Schema fields as stored: the priority as its rank (see models.Priority)."""
    if "priority" in fields:
        fields = {**fields, "priority": Priority[str(fields["priority"])].value}
    return fields


async def list_page(session: AsyncSession, claims: AccessClaims, query: TodoListQuery) -> TodoPage:
    order = SortOrder.parse(query.sort)
    fingerprint = query_signature(query)
    stmt = _owned(*_filters(query))
    if query.cursor is not None:
        value, last_id = decode_todo_cursor(query.cursor, order, fingerprint)
        stmt = stmt.where(order.after(value, last_id))
    stmt = stmt.order_by(*order.order_by()).limit(query.limit + 1)
    rows = (await session.execute(stmt, {"owner_id": claims.user_id})).all()
    if rows:
        check_access(claims, rows[0])
    else:
        await authorize(session, claims)
    page, last = split_page(rows, query.limit)
    next_cursor = encode_todo_cursor(order, fingerprint, last) if last else None
    return TodoPage(items=[TodoRead.model_validate(row) for row in page], next_cursor=next_cursor)


def _filters(query: TodoListQuery) -> list[Any]:
    filters: list[Any] = []
    if query.completed is not None:
        filters.append(Todo.completed == query.completed)
    if query.priority is not None:
        filters.append(Todo.priority == Priority[query.priority])
    if query.q is not None:
        filters.append(
            Todo.title.icontains(query.q, autoescape=True)
            | Todo.description.icontains(query.q, autoescape=True)
        )
    # A todo without a due date matches neither bound (NULL comparisons are never true).
    if query.due_before is not None:
        filters.append(Todo.due_date < query.due_before)
    if query.due_after is not None:
        filters.append(Todo.due_date > query.due_after)
    return filters


async def stats(session: AsyncSession, claims: AccessClaims) -> TodoStats:
    await authorize(session, claims)
    open_ = Todo.completed.is_(False)
    overdue = open_ & (Todo.due_date < utcnow())
    result = await session.execute(
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
