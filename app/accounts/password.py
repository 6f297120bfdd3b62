"""The current password, checked before a change that needs it (a new password, a new email,
the account's deletion), and the password change itself.

A wrong current password is a failed password check like a login's: throttled the same way
(app.accounts.throttle), or a stolen access token would allow guessing it at bcrypt speed. The
count is the account's (its user id), not its email's: changing the email resets nothing.
"""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import login_repository, repository, throttle
from app.accounts.models import UserRecord
from app.accounts.security import PasswordHasher
from app.actor import Actor
from app.config import Settings
from app.database import transaction, utcnow
from app.errors import BadRequest, Unauthorized

INCORRECT = "Current password is incorrect"


@dataclass(frozen=True, slots=True)
class PasswordChangeAttempt:
    current: str
    new: str
    address: str  # the client's, for the throttle (app.accounts.throttle.client_address)


async def verify_current(
    session: AsyncSession,
    hasher: PasswordHasher,
    settings: Settings,
    user: UserRecord,
    password: str,
    address: str,
) -> None:
    """400 for a wrong current password (and a failure counted for the account), 429 while
    the account or the address is throttled, before any bcrypt work."""
    key = throttle.Key(user.email, user.id, address)
    await throttle.check(session, settings, key, utcnow())
    # Nothing holds a connection through bcrypt (the user was read already): commit() ends
    # the autocommit transaction and gives its connection back to the pool.
    await session.commit()
    if await hasher.verify_async(password, user.hashed_password):
        return
    async with transaction(session):
        now = utcnow()
        await throttle.lock_account(session, key)
        # Parallel guesses: the verdict under the lock counts those recorded meanwhile.
        await throttle.check(session, settings, key, now)
        await throttle.record_failure(session, settings, key, now)
    raise BadRequest(INCORRECT)


async def change_password(
    session: AsyncSession,
    hasher: PasswordHasher,
    settings: Settings,
    user: UserRecord,
    change: PasswordChangeAttempt,
) -> None:
    await verify_current(session, hasher, settings, user, change.current, change.address)
    hashed = await hasher.hash_async(change.new)
    now = utcnow()
    async with transaction(session):
        # Only while the password just verified is still the user's (the generation has not
        # moved on). Moving it on ends every access token and refresh token issued so far,
        # and every login in flight with the old password (app.accounts.service.login).
        verified = Actor(user.id, user.credential_generation)
        if not await repository.set_password(session, verified, hashed, now):
            raise Unauthorized()
        await login_repository.end_all(session, user.id, now)
