"""Refresh-token storage: create, find, revoke. Used by auth (login, rotation, logout) and by
users (a password change or deactivation ends every login), always with the token's login
locked first (app.accounts.logins)."""

import uuid
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import RefreshToken
from app.accounts.security import hash_refresh_token, new_refresh_token

_BY_HASH = select(
    RefreshToken.id,
    RefreshToken.user_id,
    RefreshToken.family_id,
    RefreshToken.expires_at,
    RefreshToken.rotated_at,
    RefreshToken.revoked_at,
    RefreshToken.credential_generation,
).where(RefreshToken.token_hash == bindparam("token_hash"))


class NewToken(NamedTuple):
    user_id: uuid.UUID
    family_id: uuid.UUID
    # The user's credential generation the login was verified against.
    credential_generation: int


async def create(session: AsyncSession, new: NewToken, now: datetime, expires_at: datetime) -> str:
    """Store a new refresh token (its hash only) and return the raw token for the client."""
    raw = new_refresh_token()
    await session.execute(
        insert(RefreshToken).values(
            id=uuid.uuid4(),
            user_id=new.user_id,
            family_id=new.family_id,
            credential_generation=new.credential_generation,
            token_hash=hash_refresh_token(raw),
            created_at=now,
            expires_at=expires_at,
        )
    )
    return raw


async def find(session: AsyncSession, raw: str) -> Any:
    """The stored token (id, user_id, family_id, expires_at, rotated_at, revoked_at,
    credential_generation), or None. Not locked: its login's row is (app.accounts.logins)."""
    return (await session.execute(_BY_HASH, {"token_hash": hash_refresh_token(raw)})).first()


async def mark_rotated(session: AsyncSession, token_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(RefreshToken).where(RefreshToken.id == token_id).values(rotated_at=now)
    )


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def revoke_all(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
