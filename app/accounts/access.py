"""Whether an access token's user may still act, written once, as SQL.

The token's user must exist, be active, and still be at the credential generation the token
was issued for: a password change or a deactivation moves the generation on, so every token
from before it stops working at once, whatever the clocks of the replicas say. Being SQL, the
rule goes into the very statement that reads or writes the user's data, so checking it costs
no round trip of its own; a statement that finds nothing asks authorize() why
(docs/adr/0002-access-rule-in-every-statement.md).
"""

from typing import Any

from sqlalchemy import and_, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.accounts.security import AccessClaims
from app.errors import Unauthorized

# Parameters: user_id and generation, from params().
ADMITS = and_(
    User.id == bindparam("user_id"),
    User.is_active,
    User.credential_generation == bindparam("generation"),
)

ADMITTED = exists().where(ADMITS)
_AUTHORIZE = select(ADMITTED)


def params(claims: AccessClaims) -> dict[str, Any]:
    return {"user_id": claims.user_id, "generation": claims.generation}


async def authorize(session: AsyncSession, claims: AccessClaims) -> None:
    """401 unless the token's user may still act."""
    if not (await session.execute(_AUTHORIZE, params(claims))).scalar():
        raise Unauthorized()
