"""Reading todos by the many: a page of the list (filters, sort, cursor) and the counts."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import authorization
from app.accounts.security import AccessClaims
from app.actor import Actor
from app.database import utcnow
from app.errors import Unauthorized
from app.todos import filters, labels_repository, listing_repository
from app.todos.pagination import (
    SortOrder,
    decode_todo_cursor,
    encode_todo_cursor,
    query_signature,
)
from app.todos.schemas import LabelCount, LabelList, TodoListQuery, TodoPage, TodoStats


async def list_page(session: AsyncSession, claims: AccessClaims, query: TodoListQuery) -> TodoPage:
    sort = query.effective_sort()
    query = query.model_copy(update={"sort": sort})  # the cursor's signature names it
    order = SortOrder.parse(sort)
    fingerprint = query_signature(query)
    after = None
    if query.cursor is not None:
        after = decode_todo_cursor(query.cursor, order, fingerprint)
    found = await listing_repository.page(
        session, Actor.of(claims), sort, filters.params(query), after, query.limit
    )
    if not found.items:  # nothing of theirs, or a user who may no longer act
        await authorization.authorize(session, claims)
    last = found.last
    next_cursor = encode_todo_cursor(order, fingerprint, last) if last else None
    return TodoPage(items=found.items, next_cursor=next_cursor)


async def stats(session: AsyncSession, claims: AccessClaims) -> TodoStats:
    counts = await listing_repository.counts(session, Actor.of(claims), utcnow())
    if not counts.admitted:
        raise Unauthorized()
    total, completed = counts.total, counts.completed
    return TodoStats(
        total=total, completed=completed, open=total - completed, overdue=counts.overdue
    )


async def labels(session: AsyncSession, claims: AccessClaims) -> LabelList:
    found = await labels_repository.counts(session, Actor.of(claims))
    if not found:  # no labels, or a user who may no longer act
        await authorization.authorize(session, claims)
    return LabelList(items=[LabelCount(name=label.name, count=label.count) for label in found])
