"""Refresh and logout: what a presented refresh token gets, decided under its login's lock.

Every transaction that changes a login or its tokens locks the login's row first
(app.accounts.login_repository.lock), and a refresh checks under that lock that the login is
still live before it issues anything. So a logout, a detected reuse, a password change or a
deactivation either runs before a refresh (which then finds the login ended: 401) or waits for
it and then ends what it issued too. Nothing in flight survives an ending (docs/adr/0101).

A presented token is, in this order:
- unknown, or of an unknown login: 401;
- of an ended login, or revoked itself: 401, and the login is ended (again): whatever a
  release without login rows left unrevoked in that family dies now (reuse detection
  re-triggers on every re-presentation);
- exchanged before, more than REFRESH_REUSE_GRACE_SECONDS ago: reuse. The client or a thief
  holds a stale copy and we cannot tell which, so the login ends; 401;
- expired, past its login's absolute end, or of a user who may no longer log in: 401;
- exchanged before, within the grace window (counted from its first exchange, so it cannot be
  stretched): a new pair in the same login, as for its first exchange. Two app processes
  refreshing at once both stay logged in; every pair so issued ends with the login;
- otherwise (its first exchange): it is marked exchanged, and a new pair is issued.
"""

import enum

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository
from app.accounts.login_repository import end, find_token, lock, mark_rotated
from app.accounts.schemas import TokenPair
from app.accounts.security import TokenCodec, hash_refresh_token
from app.accounts.service import Issue, issue_pair
from app.config import Settings
from app.database import transaction, utcnow
from app.errors import Unauthorized
from app.retry import retrying

BAD_REFRESH_TOKEN = "Invalid or expired refresh token"  # noqa: S105 - a message


class _Refused(enum.Enum):
    DEAD = "dead"  # nothing to do but say no
    ENDED = "ended"  # the login was ended by this request (committed before answering)


async def refresh(
    session: AsyncSession, codec: TokenCodec, settings: Settings, raw_token: str
) -> TokenPair:
    """Exchange a refresh token for a new pair in its login (see the module docstring)."""
    outcome = await retrying(lambda: _refresh(session, codec, settings, raw_token))
    if isinstance(outcome, _Refused):
        # Only now, with any ending committed: the 401 must not undo it.
        raise Unauthorized(BAD_REFRESH_TOKEN)
    return outcome


async def _refresh(
    session: AsyncSession, codec: TokenCodec, settings: Settings, raw_token: str
) -> TokenPair | _Refused:
    token_hash = hash_refresh_token(raw_token)
    async with transaction(session):
        found = await find_token(session, token_hash)
        if found is None:
            return _Refused.DEAD
        login = await lock(session, found.family_id, settings.login_lifetime)
        # Read again under the lock: a refresh that held it before may have exchanged it.
        token = await find_token(session, token_hash)
        if login is None or token is None:
            return _Refused.DEAD
        now = utcnow()
        stale = (
            token.rotated_at is not None and now - token.rotated_at > settings.refresh_reuse_grace
        )
        if login.revoked_at is not None or token.revoked_at is not None or stale:
            await end(session, token.family_id, now)
            return _Refused.ENDED
        user = await repository.by_id(session, token.user_id)
        # The generation, not the user's row lock, decides: a change committed after this
        # read moves it on, and the pair issued here (carrying the old one) dies with it.
        if (
            token.expires_at <= now
            or login.expires_at <= now
            or user is None
            or not user.is_active
            or user.credential_generation != token.credential_generation
        ):
            return _Refused.DEAD
        if token.rotated_at is None:
            await mark_rotated(session, token.id, now)
        issue = Issue(user.id, token.credential_generation, token.family_id, login.expires_at)
        return await issue_pair(session, codec, settings, issue)


async def logout(session: AsyncSession, settings: Settings, raw_token: str) -> None:
    """End the login the token belongs to, whatever state the token is in; unknown tokens
    are fine (nothing to do)."""
    await retrying(lambda: _logout(session, settings, raw_token))


async def _logout(session: AsyncSession, settings: Settings, raw_token: str) -> None:
    async with transaction(session):
        token = await find_token(session, hash_refresh_token(raw_token))
        if token is None:
            return
        # Locked first: a refresh of this login in flight finishes before the ending, which
        # then ends what it issued too.
        if await lock(session, token.family_id, settings.login_lifetime) is not None:
            await end(session, token.family_id, utcnow())
