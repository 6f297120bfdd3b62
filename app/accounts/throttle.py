"""Throttling of failed password checks (logins, and the current password of a change).

Limits over LOGIN_WINDOW_SECONDS, for a client with no device token ("untrusted"):
LOGIN_MAX_FAILURES failures for one account from one client address lock that account for
that address only (an attacker elsewhere cannot lock the owner out); LOGIN_MAX_ADDRESS_FAILURES
from one address, across any accounts, lock that address for all of them (no spraying); and
LOGIN_MAX_ACCOUNT_FAILURES for one account from untrusted clients anywhere lock the account
for every untrusted client (no guessing spread over addresses). A client presenting a valid
device token of the account (app.accounts.devices, OWASP "device cookies") is held to one limit
only: LOGIN_MAX_FAILURES failures made with that token lock the token. So the owner keeps
logging in from their devices while an attack goes on, and a stolen token buys five guesses.

An IPv6 address counts by its /64: one subscriber gets at least a /64, so its 2^64 addresses
are one client's. The account is the user, when the email belongs to one (failures count for
it whatever its email becomes), else the email typed: unknown emails are throttled exactly
like real ones, so the throttle cannot tell which emails have accounts.

The failures live in the database, so every worker and replica sees the same counts. On
PostgreSQL a transaction-scoped advisory lock per account (transaction-scoped: it must work
behind a pooler in transaction mode) serialises the final check and the recording of each
verdict, so a burst of parallel guesses cannot slip past the per-account limits. SQLite
serialises writers anyway (BEGIN IMMEDIATE). The address-wide limit takes no lock of its own:
it would serialise every login behind one proxy; it may be overshot by the verdicts running
at that moment, which is no help to a spray of thousands.
"""

import hashlib
import ipaddress
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from sqlalchemy import ColumnElement, Integer, and_, bindparam, delete, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import ADDRESS_LENGTH, LoginFailure
from app.config import Settings
from app.database import dialect_name
from app.errors import TooManyRequests

THROTTLED = "Too many failed login attempts; try again later"


@dataclass(frozen=True, slots=True)
class Key:
    """Whose password is checked, from where, and with which device token."""

    email: str  # lower-cased: the one typed (a login) or the account's current one
    user_id: uuid.UUID | None  # the account, when one has that email
    address: str  # the client's (client_address)
    device_id: uuid.UUID | None = None  # a valid device token of the account was presented


def client_address(request: Request) -> str:
    """The peer's address, or the one a trusted proxy put in X-Forwarded-For (uvicorn's proxy
    headers support, FORWARDED_ALLOW_IPS, has already written it into request.client), as the
    throttle counts it: an IPv6 address as its /64."""
    return address_bucket(request.client.host) if request.client else ""


def address_bucket(host: str) -> str:
    try:
        address = ipaddress.ip_address(host.partition("%")[0])  # a zone says nothing here
    except ValueError:  # not an IP address (a test client's name, a unix socket's path)
        return host[:ADDRESS_LENGTH]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is 192.0.2.1
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


async def lock_account(session: AsyncSession, key: Key) -> None:
    if dialect_name(session) == "postgresql":
        account = f"user:{key.user_id}" if key.user_id else f"email:{key.email}"
        digest = hashlib.sha256(f"login:{account}".encode()).digest()
        lock = int.from_bytes(digest[:8], "big", signed=True)
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock})


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


async def check(session: AsyncSession, settings: Settings, key: Key, now: datetime) -> None:
    """429 while any limit that applies to this client is reached. One statement for all."""
    window = timedelta(seconds=settings.login_window_seconds)
    params = {
        "email": key.email,
        "user_id": key.user_id,
        "address": key.address,
        "device": key.device_id,
        "since": now - window,
        "pair_offset": settings.login_max_failures - 1,
        "address_offset": settings.login_max_address_failures - 1,
        "account_offset": settings.login_max_account_failures - 1,
    }
    row = (await session.execute(_verdict(key), params)).one()
    locked_since = [failed_at for failed_at in row if failed_at is not None]
    if locked_since:
        # Capped at the window: a failure stamped a moment after `now` (by a request that got
        # the lock first, or by a replica whose clock runs ahead) cannot lock for longer.
        wait = math.ceil((max(locked_since) + window - now).total_seconds())
        raise TooManyRequests(min(wait, settings.login_window_seconds), THROTTLED)


async def record_failure(
    session: AsyncSession, settings: Settings, key: Key, now: datetime
) -> None:
    window = timedelta(seconds=settings.login_window_seconds)
    # Failures that left the window no longer count: drop the account's as we go.
    await session.execute(
        delete(LoginFailure).where(_account(key), LoginFailure.failed_at <= now - window),
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
    """A success forgets this address's failures for the account, and the device token's:
    the owner's login cannot reset what an attacker elsewhere has run up."""
    mine = and_(_account(key), LoginFailure.client_address == bindparam("address"))
    if key.device_id is not None:
        mine = or_(mine, LoginFailure.device_id == bindparam("device"))
    params = {
        "email": key.email,
        "user_id": key.user_id,
        "address": key.address,
        "device": key.device_id,
    }
    await session.execute(delete(LoginFailure).where(mine), params)
