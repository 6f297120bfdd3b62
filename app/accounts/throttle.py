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

import ipaddress
import math
from datetime import datetime, timedelta

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import throttle_repository
from app.accounts.models import ADDRESS_LENGTH
from app.accounts.throttle_repository import Key
from app.config import Settings
from app.errors import TooManyRequests

__all__ = [
    "THROTTLED",
    "Key",
    "address_bucket",
    "check",
    "clear",
    "client_address",
    "lock_account",
    "record_failure",
]

THROTTLED = "Too many failed login attempts; try again later"


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
    """Serialise the account's verdicts until the transaction ends (see the module docstring)."""
    await throttle_repository.lock_account(session, key)


async def check(session: AsyncSession, settings: Settings, key: Key, now: datetime) -> None:
    """429 while any limit that applies to this client is reached."""
    window = timedelta(seconds=settings.login_window_seconds)
    limits = throttle_repository.Limits(
        settings.login_max_failures,
        settings.login_max_address_failures,
        settings.login_max_account_failures,
    )
    locked_since = await throttle_repository.reached(session, key, now - window, limits)
    if locked_since:
        # Capped at the window: a failure stamped a moment after `now` (by a request that got
        # the lock first, or by a replica whose clock runs ahead) cannot lock for longer.
        wait = math.ceil((max(locked_since) + window - now).total_seconds())
        raise TooManyRequests(min(wait, settings.login_window_seconds), THROTTLED)


async def record_failure(
    session: AsyncSession, settings: Settings, key: Key, now: datetime
) -> None:
    # Failures that left the window no longer count: drop the account's as we go.
    window = timedelta(seconds=settings.login_window_seconds)
    await throttle_repository.record_failure(session, key, now, now - window)


async def clear(session: AsyncSession, key: Key) -> None:
    """A success forgets this address's failures for the account, and the device token's:
    the owner's login cannot reset what an attacker elsewhere has run up."""
    await throttle_repository.clear(session, key)
