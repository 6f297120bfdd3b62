"""Account quotas (API.md v1.2): at most MAX_TODOS_PER_USER todos and MAX_LISTS_PER_USER
lists per account, so that no one account's rows (and the work they cost) grow without bound.

The counts live in account_usage, kept by triggers on todos and lists (the account_usage
migration), so a delete, a cascade or another release's insert counts too. A create checks
the count inside its own INSERT: below_quota() reads the account's row FOR NO KEY UPDATE, so
concurrent creates of one account take turns on that row (for the length of one statement),
each sees the count the one before it left, and none overshoots. On SQLite the one writer at
a time gives the same. The check costs the create no round trip of its own.
"""

import uuid
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import AccountUsage
from app.errors import Forbidden

TODOS, LISTS = "todos", "lists"
_SETTING = {TODOS: "MAX_TODOS_PER_USER", LISTS: "MAX_LISTS_PER_USER"}
_COLUMN = {TODOS: AccountUsage.todos, LISTS: AccountUsage.lists}
_OF_USER = AccountUsage.user_id == bindparam("user_id")


def below_quota(kind: str) -> ColumnElement[bool]:
    """SQL: the account (parameter user_id) holds fewer than `quota` items of this kind."""
    held = select(_COLUMN[kind]).where(_OF_USER).with_for_update(key_share=True)
    return func.coalesce(held.scalar_subquery(), 0) < bindparam("quota")


_HELD = {kind: select(column).where(_OF_USER) for kind, column in _COLUMN.items()}


def params(quota: int) -> dict[str, Any]:
    return {"quota": quota}


async def check(session: AsyncSession, user_id: uuid.UUID, kind: str, quota: int) -> None:
    """403 if the account is at its quota: why a create that found its list inserted nothing."""
    held = (await session.execute(_HELD[kind], {"user_id": user_id})).scalar() or 0
    if held >= quota:
        raise Forbidden(
            f"Quota reached: an account holds at most {quota} {kind} ({_SETTING[kind]});"
            " delete some to make room"
        )
