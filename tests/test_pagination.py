"""Keyset pages (app/pagination.py) against the database (fast tier: a rolled-back session).

keyset_after is one row-value comparison, (value, id) > (:after_0, :after_1): each backend must
read it in the same order its ORDER BY gives, ties broken by id, or a walk skips or repeats
rows. A cursor carries the last row's value through JSON and back (timestamps as ISO 8601 with
an offset): the value that comes back must bind as the one that went out.
"""

import base64
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import ColumnElement, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.database import transaction
from app.errors import InvalidInput
from app.pagination import (
    after_params,
    decode_cursor,
    encode_cursor,
    keyset_after,
    parse_aware,
    split_page,
)
from app.todos.models import Todo
from tests.support.rows import add_user, default_list

pytestmark = pytest.mark.anyio

C = cast(Table, Todo.__table__).c
T0 = datetime(2030, 1, 1, tzinfo=UTC)


async def _todos(session: AsyncSession, count: int) -> uuid.UUID:
    """`count` todos of one new user, with many ties in title and in updated_at."""
    async with transaction(session):
        owner = await add_user(session)
        list_id = await default_list(session, owner)
        for n in range(count):
            session.add(
                Todo(
                    owner_id=owner, list_id=list_id, position=f"{n + 1:010d}",
                    title=f"title {n % 4}", updated_at=T0 + timedelta(seconds=n % 5),
                )
            )  # fmt: skip
        await session.flush()
    return owner


async def _ids(session: AsyncSession, owner: uuid.UUID, order: Sequence[Any]) -> list[uuid.UUID]:
    query = select(C.id).where(C.owner_id == owner).order_by(*order)
    return list((await session.execute(query)).scalars())


async def _walk(
    session: AsyncSession, owner: uuid.UUID, column: ColumnElement[Any], *, descending: bool,
    limit: int, through_json: bool = False,
) -> list[uuid.UUID]:  # fmt: skip
    order: Sequence[Any] = (column.desc(), C.id.desc()) if descending else (column, C.id)
    base = select(C.id, column).where(C.owner_id == owner).order_by(*order).limit(limit + 1)
    following = base.where(keyset_after((column, C.id), descending=descending))
    seen: list[uuid.UUID] = []
    params: dict[str, Any] | None = None
    while True:
        rows = (await session.execute(base if params is None else following, params or {})).all()
        page, last = split_page(rows, limit)
        seen += [row.id for row in page]
        if last is None:
            return seen
        value, last_id = last[1], last.id
        if through_json:  # as a client would send it back
            written = value.isoformat() if isinstance(value, datetime) else value
            raw, last_id = decode_cursor(encode_cursor("q", written, last_id), "q")
            value = parse_aware(raw) if isinstance(value, datetime) else raw
        params = after_params((value, last_id))


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("limit", [1, 3, 7])
async def test_a_walk_returns_the_order_by_exactly_once(
    db_session: AsyncSession, descending: bool, limit: int
) -> None:
    owner = await _todos(db_session, 17)
    order = (C.title.desc(), C.id.desc()) if descending else (C.title, C.id)
    whole = await _ids(db_session, owner, order)
    assert len(whole) == 17
    walked = await _walk(db_session, owner, C.title, descending=descending, limit=limit)
    assert walked == whole


@pytest.mark.parametrize("descending", [False, True])
async def test_a_timestamp_cursor_through_json_continues_where_it_stopped(
    db_session: AsyncSession, descending: bool
) -> None:
    owner = await _todos(db_session, 12)
    order = (C.updated_at.desc(), C.id.desc()) if descending else (C.updated_at, C.id)
    whole = await _ids(db_session, owner, order)
    walked = await _walk(
        db_session, owner, C.updated_at, descending=descending, limit=2, through_json=True
    )
    assert walked == whole


def test_a_cursor_of_another_query_or_forged_is_the_clients_error() -> None:
    cursor = encode_cursor("q", "a", uuid.uuid4())
    for bad in (cursor[:-3], "x" * 10, encode_cursor("other", "a", uuid.uuid4())):
        with pytest.raises(InvalidInput):
            decode_cursor(bad, "q")
    # JSON's escapes let a client write a lone surrogate, which no driver can bind: a 500 once.
    payload = f'{{"f":"q","v":"\\ud800","id":"{uuid.uuid4()}"}}'.encode()
    forged = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    with pytest.raises(InvalidInput):
        decode_cursor(forged, "q")
