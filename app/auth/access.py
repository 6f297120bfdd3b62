"""Whether an access token's user may still act, written once, as SQL.

The token's user must exist, be active, and not have changed its password since the token
was issued: a deactivated user's tokens stop working at once, and so does every token from
before a password change. Being SQL, the rule goes into the very statement that reads or
writes the user's data, so checking it costs no round trip of its own; a statement that
finds nothing asks authorize() why.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.security import AccessClaims
from app.errors import Unauthorized
from app.users.models import User

# Parameters: user_id and issued_at, from params().
ADMITS = and_(
    User.id == bindparam("user_id"),
    User.is_active,
    or_(User.password_changed_at.is_(None), User.password_changed_at <= bindparam("issued_at")),
)

ADMITTED = exists().where(ADMITS)
_AUTHORIZE = select(ADMITTED)


def params(claims: AccessClaims) -> dict[str, Any]:
    return {
        "user_id": claims.user_id,
        "issued_at": datetime.fromtimestamp(claims.issued_at, UTC),
    }


async def authorize(session: AsyncSession, claims: AccessClaims) -> None:
    """401 unless the token's user may still act."""
    if not (await session.execute(_AUTHORIZE, params(claims))).scalar():
        raise Unauthorized()
