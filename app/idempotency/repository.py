"""The idempotency store's statements: the first response to a POST with an Idempotency-Key,
kept for IDEMPOTENCY_TTL so that retries with the same key get it back."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.idempotency.models import IdempotencyKey

IDEMPOTENCY_TTL = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Stored:
    """A response as it is replayed: the object it is about, its JSON body and its ETag (the
    route knows its status and builds its Location from the id)."""

    object_id: uuid.UUID
    body: str
    etag: str


@dataclass(frozen=True, slots=True)
class Remembered:
    request_hash: str
    response: Stored
    created_at: datetime


_THIS_KEY = (IdempotencyKey.user_id == bindparam("user_id"), IdempotencyKey.key == bindparam("key"))
_REMEMBERED = select(
    IdempotencyKey.request_hash,
    IdempotencyKey.todo_id,
    IdempotencyKey.response_body,
    IdempotencyKey.etag,
    IdempotencyKey.created_at,
).where(*_THIS_KEY)
_FORGET = delete(IdempotencyKey).where(*_THIS_KEY)
_REMEMBER = insert(IdempotencyKey)


async def remembered(session: AsyncSession, user_id: uuid.UUID, key: str) -> Remembered | None:
    row = (await session.execute(_REMEMBERED, {"user_id": user_id, "key": key})).first()
    if row is None:
        return None
    response = Stored(row.todo_id, row.response_body, row.etag)
    return Remembered(row.request_hash, response, row.created_at)


async def forget(session: AsyncSession, user_id: uuid.UUID, key: str) -> None:
    await session.execute(_FORGET, {"user_id": user_id, "key": key})


async def remember(
    session: AsyncSession,
    user_id: uuid.UUID,
    key: str,
    request_hash: str,
    stored: Stored,
    now: datetime,
) -> Remembered | None:
    """Store the first response under the key, or return the record of whoever stored it first."""
    try:
        # The primary key is the arbiter: on PostgreSQL a concurrent insert of the same key
        # waits here until the first transaction commits, then fails.
        async with session.begin_nested():
            await session.execute(
                _REMEMBER,
                {
                    "user_id": user_id,
                    "key": key,
                    "request_hash": request_hash,
                    "todo_id": stored.object_id,
                    "response_body": stored.body,
                    "etag": stored.etag,
                    "created_at": now,
                },
            )
    except IntegrityError:
        return await remembered(session, user_id, key)
    return None
