"""Refresh-token storage: create, find, revoke. Used by auth (login, rotation, logout) and by
users (a password change or deactivation ends every login)."""

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import RefreshToken
from app.auth.security import hash_refresh_token, new_refresh_token


async def create(
    session: AsyncSession,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    now: datetime,
    expires_at: datetime,
) -> str:
    """Store a new refresh token (its hash only) and return the raw token for the client."""
    raw = new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user_id,
            family_id=family_id,
            token_hash=hash_refresh_token(raw),
            created_at=now,
            expires_at=expires_at,
        )
    )
    await session.flush()
    return raw


async def find(session: AsyncSession, raw: str, *, for_update: bool = False) -> RefreshToken | None:
    stmt = select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(raw))
    if for_update:
        # Two refreshes racing with one token: the second waits here, then sees it rotated.
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


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
