"""Device tokens (OWASP "Slow Down Online Guessing Attacks with Device Cookies").

A successful login hands the client a device token; the client sends it back with its later
logins. It proves that this client logged in to this account before, so the account-wide
failure cap (app.accounts.throttle) does not apply to it: the owner keeps logging in while
someone guesses from elsewhere. Stored only as SHA-256 (256 random bits: nothing to
brute-force); bound to its account; replaced by a new one on every login that presents it.
The raw value exists only in the request and the response: it is never logged or stored.
"""

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import login_repository
from app.accounts.security import hash_refresh_token, new_refresh_token

# A device a user has not logged in from for this long is a new device again.
LIFETIME = timedelta(days=180)
# The newest ones per account are kept: a client that never sends its token back (curl, a
# script) must not grow the table one row per login.
MAX_PER_USER = 20


async def find(
    session: AsyncSession, raw: str | None, user_id: uuid.UUID, now: datetime
) -> uuid.UUID | None:
    """The id of the presented token if it is a live one of this account, else None: a
    token of another account, expired or made up is no token at all."""
    if not raw:
        return None
    return await login_repository.find_device(session, hash_refresh_token(raw), user_id, now)


async def issue(
    session: AsyncSession, user_id: uuid.UUID, replacing: uuid.UUID | None, now: datetime
) -> str:
    """A new token for the account (the raw value, for the client); the one presented with
    this login, and all but the newest MAX_PER_USER - 1 others, stop working."""
    raw = new_refresh_token()
    new = login_repository.NewDevice(hash_refresh_token(raw), now, now + LIFETIME)
    await login_repository.replace_devices(session, user_id, replacing, MAX_PER_USER - 1, new)
    return raw
