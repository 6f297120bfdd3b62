"""Failed password checks' statements: every read, write and lock of login_failures
(app.accounts.throttle decides what they mean)."""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Integer, and_, bindparam, delete, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import LoginFailure
from app.database import dialect_name

_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


@dataclass(frozen=True, slots=True)
class Key:
    """Whose password is checked, from where, and with which device token."""

    email: str  # lower-cased: the one typed (a login) or the account's current one
    user_id: uuid.UUID | None  # the account, when one has that email
    address: str  # the client's (app.accounts.throttle.client_address)
    device_id: uuid.UUID | None = None  # a valid device token of the account was presented


class Limits(NamedTuple):
    """How many failures inside the window lock: a client (an account from one address, or a
    device token), an address across accounts, an account from untrusted clients anywhere."""

    pair: int
    address: int
    account: int


async def lock_account(session: AsyncSession, key: Key) -> None:
    """The key's account locked until the transaction ends (PostgreSQL: a transaction-scoped
    advisory lock, which works behind a pooler in transaction mode; SQLite serialises writers
    anyway)."""
    if dialect_name(session) == "postgresql":
        account = f"user:{key.user_id}" if key.user_id else f"email:{key.email}"
        digest = hashlib.sha256(f"login:{account}".encode()).digest()
        lock = int.from_bytes(digest[:8], "big", signed=True)
        await session.execute(_ADVISORY_LOCK, {"key": lock})


def _account(key: Key) -> ColumnElement[bool]:
    if key.user_id is not None:
        return LoginFailure.user_id == bindparam("user_id")
    return and_(LoginFailure.user_id.is_(None), LoginFailure.email == bindparam("email"))


def _nth_latest(offset: str, *where: ColumnElement[bool]) -> ColumnElement[datetime]:
    # The limit-th most recent failure inside the window (offset: limit - 1): the lock holds
    # until that failure leaves the window.
    return (
        select(LoginFailure.failed_at)
        .where(*where, LoginFailure.failed_at > bindparam("since"))
        .order_by(LoginFailure.failed_at.desc())
        .offset(bindparam(offset, type_=Integer))
        .limit(1)
        .scalar_subquery()
    )


def _verdict(key: Key) -> Any:
    if key.device_id is not None:
        return select(_nth_latest("pair_offset", LoginFailure.device_id == bindparam("device")))
    same_address = LoginFailure.client_address == bindparam("address")
    return select(
        _nth_latest("pair_offset", _account(key), same_address),
        _nth_latest("address_offset", same_address),
        _nth_latest("account_offset", _account(key), LoginFailure.device_id.is_(None)),
    )


def _params(key: Key) -> dict[str, Any]:
    return {
        "email": key.email,
        "user_id": key.user_id,
        "address": key.address,
        "device": key.device_id,
    }


async def reached(
    session: AsyncSession, key: Key, since: datetime, limits: Limits
) -> list[datetime]:
    """For each limit that applies to the key and is reached by the failures after `since`,
    the failure that reached it (the limit-th most recent). One statement for all."""
    params = {
        **_params(key),
        "since": since,
        "pair_offset": limits.pair - 1,
        "address_offset": limits.address - 1,
        "account_offset": limits.account - 1,
    }
    row = (await session.execute(_verdict(key), params)).one()
    return [failed_at for failed_at in row if failed_at is not None]


async def record_failure(session: AsyncSession, key: Key, now: datetime, expired: datetime) -> None:
    """A failure of the key at `now`; the account's failures up to `expired` are dropped."""
    await session.execute(
        delete(LoginFailure).where(_account(key), LoginFailure.failed_at <= expired),
        {"email": key.email, "user_id": key.user_id},
    )
    await session.execute(
        insert(LoginFailure).values(
            id=uuid.uuid4(),
            email=key.email,
            user_id=key.user_id,
            client_address=key.address,
            device_id=key.device_id,
            failed_at=now,
        )
    )


async def clear(session: AsyncSession, key: Key) -> None:
    """Forget the account's failures from the key's address, and its device token's."""
    mine = and_(_account(key), LoginFailure.client_address == bindparam("address"))
    if key.device_id is not None:
        mine = or_(mine, LoginFailure.device_id == bindparam("device"))
    await session.execute(delete(LoginFailure).where(mine), _params(key))
