import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

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

IDEMPOTENCY_TTL = timedelta(hours=24)
NOT_FOUND_MESSAGE = "Todo not found"


@dataclass(frozen=True, slots=True)
class CreatedTodo:
    """The first response to a create, replayed verbatim to retries with the same key."""

    todo_id: uuid.UUID
    body: str
    etag: str


def etag(todo: Todo) -> str:
    return f'"{todo.version}"'


def get_owned(
    session: Session, owner_id: uuid.UUID, todo_id: uuid.UUID, *, for_update: bool = False
) -> Todo:
    # Scoped by owner in the query itself: another user's todo is simply not found.
    stmt = select(Todo).where(Todo.id == todo_id, Todo.owner_id == owner_id)
    if for_update:
        # Hold the row from the If-Match check to the commit, so no write slips in between.
        stmt = stmt.with_for_update()
    todo = session.scalar(stmt)
    if todo is None:
        raise NotFound(NOT_FOUND_MESSAGE)
    return todo


def check_if_match(todo: Todo, if_match: str | None) -> None:
    if if_match is None:
        return
    tags = {tag.strip() for tag in if_match.split(",")}
    # Strong comparison: a weak tag (W/"...") never matches.
    if "*" not in tags and etag(todo) not in tags:
        raise PreconditionFailed()


def create(session: Session, owner_id: uuid.UUID, data: TodoCreate) -> CreatedTodo:
    return _created(_insert(session, owner_id, data))


def create_idempotent(
    session: Session, owner_id: uuid.UUID, data: TodoCreate, key: str
) -> CreatedTodo:
    """Create once per (user, key); a retry with the same body gets the first response back."""
    request_hash = hashlib.sha256(data.model_dump_json().encode()).hexdigest()
    record = session.get(IdempotencyKey, (owner_id, key))
    if record is not None and record.created_at < utcnow() - IDEMPOTENCY_TTL:
        session.delete(record)
        session.flush()
        record = None
    if record is None:
        todo = _insert(session, owner_id, data)
        created = _created(todo)
        record = _remember(session, owner_id, key, request_hash, created)
        if record is None:
            return created
        # A concurrent request with this key won: ours must leave nothing behind.
        session.delete(todo)
        session.flush()
    if record.request_hash != request_hash:
        raise InvalidInput(
            ("header", "Idempotency-Key"),
            "This Idempotency-Key was already used with a different request body",
        )
    return CreatedTodo(record.todo_id, record.response_body, record.etag)


def _insert(session: Session, owner_id: uuid.UUID, data: TodoCreate) -> Todo:
    now = utcnow()
    todo = Todo(owner_id=owner_id, created_at=now, updated_at=now)
    _apply(todo, data.model_dump(), now)
    session.add(todo)
    session.flush()
    return todo


def _created(todo: Todo) -> CreatedTodo:
    return CreatedTodo(todo.id, TodoRead.model_validate(todo).model_dump_json(), etag(todo))


def _remember(
    session: Session, owner_id: uuid.UUID, key: str, request_hash: str, created: CreatedTodo
) -> IdempotencyKey | None:
    """Store the first response under the key, or return the record of whoever stored it first."""
    try:
        # The primary key is the arbiter: on PostgreSQL a concurrent insert of the same key
        # waits here until the first transaction commits, then fails.
        with session.begin_nested():
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
        return session.get(IdempotencyKey, (owner_id, key))
    return None


def update(session: Session, todo: Todo, data: TodoUpdate, if_match: str | None) -> Todo:
    """PATCH: only the fields the client sent."""
    return _write(session, todo, data.model_dump(exclude_unset=True), if_match)


def replace(session: Session, todo: Todo, data: TodoCreate, if_match: str | None) -> Todo:
    """PUT: every writable field; the omitted ones come back as their defaults."""
    return _write(session, todo, data.model_dump(), if_match)


def _write(session: Session, todo: Todo, changes: dict[str, object], if_match: str | None) -> Todo:
    check_if_match(todo, if_match)
    now = utcnow()
    _apply(todo, changes, now)
    todo.updated_at = now
    session.flush()
    return todo


def delete(session: Session, todo: Todo, if_match: str | None) -> None:
    check_if_match(todo, if_match)
    session.delete(todo)
    session.flush()


def _apply(todo: Todo, changes: dict[str, object], now: datetime) -> None:
    if "priority" in changes:
        changes["priority"] = Priority[str(changes["priority"])]
    if "completed" in changes and changes["completed"] != bool(todo.completed):
        # completed_at follows completed: set when it turns true, cleared when it turns false.
        todo.completed_at = now if changes["completed"] else None
    for field, value in changes.items():
        setattr(todo, field, value)


def list_page(session: Session, owner_id: uuid.UUID, query: TodoListQuery) -> TodoPage:
    order = SortOrder.parse(query.sort)
    fingerprint = query_signature(query)
    stmt = select(Todo).where(Todo.owner_id == owner_id)
    if query.completed is not None:
        stmt = stmt.where(Todo.completed == query.completed)
    if query.priority is not None:
        stmt = stmt.where(Todo.priority == Priority[query.priority])
    if query.q is not None:
        stmt = stmt.where(
            Todo.title.icontains(query.q, autoescape=True)
            | Todo.description.icontains(query.q, autoescape=True)
        )
    # A todo without a due date matches neither bound (NULL comparisons are never true).
    if query.due_before is not None:
        stmt = stmt.where(Todo.due_date < query.due_before)
    if query.due_after is not None:
        stmt = stmt.where(Todo.due_date > query.due_after)
    if query.cursor is not None:
        value, last_id = decode_todo_cursor(query.cursor, order, fingerprint)
        stmt = stmt.where(order.after(value, last_id))
    rows = session.scalars(stmt.order_by(*order.order_by()).limit(query.limit + 1)).all()
    page, last = split_page(rows, query.limit)
    next_cursor = encode_todo_cursor(order, fingerprint, last) if last else None
    return TodoPage(items=[TodoRead.model_validate(t) for t in page], next_cursor=next_cursor)


def stats(session: Session, owner_id: uuid.UUID) -> TodoStats:
    open_ = Todo.completed.is_(False)
    overdue = open_ & (Todo.due_date < utcnow())
    total, completed, overdue_count = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((Todo.completed, 1), else_=0)), 0),
            func.coalesce(func.sum(case((overdue, 1), else_=0)), 0),
        ).where(Todo.owner_id == owner_id)
    ).one()
    return TodoStats(
        total=total, completed=completed, open=total - completed, overdue=overdue_count
    )
