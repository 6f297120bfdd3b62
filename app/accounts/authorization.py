"""Why a statement guarded by the access rule (app.accounts.access) found nothing: asked
afterwards, so the common case costs no round trip of its own."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository
from app.accounts.security import AccessClaims
from app.actor import Actor
from app.errors import Unauthorized


async def authorize(session: AsyncSession, claims: AccessClaims) -> None:
    """401 unless the token's user may still act."""
    if not await repository.admits(session, Actor.of(claims)):
        raise Unauthorized()
