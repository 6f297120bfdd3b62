"""Rows the fast tier's tests start from, written through the session under test (so they are
rolled back with everything else). Call inside `async with transaction(session):`, as every
second write must be."""

import uuid

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.lists.models import TodoList


async def add_user(session: AsyncSession) -> uuid.UUID:
    """A user (and, by the users trigger, its default list); no usable password."""
    user_id = uuid.uuid4()
    await session.execute(
        insert(User).values(id=user_id, email=f"{user_id.hex}@example.com", hashed_password="x")
    )
    return user_id


async def default_list(session: AsyncSession, owner: uuid.UUID) -> uuid.UUID:
    query = select(TodoList.id).where(TodoList.owner_id == owner, TodoList.is_default)
    list_id: uuid.UUID = (await session.execute(query)).scalar_one()
    return list_id
