"""Password hashing and token primitives. Everything here is CPU work; nothing touches the database.

Hashing is slow on purpose (bcrypt): call it only from sync code, which FastAPI runs in its
thread pool, never from a coroutine on the event loop.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jose import JWTError, jwt
from passlib.context import CryptContext

from app.config import Settings

ACCESS_TOKEN_TYPE = "access"  # noqa: S105 - a claim value, not a secret
REQUIRED_CLAIMS = ("sub", "exp", "iat", "jti", "type")


class PasswordHasher:
    def __init__(self, rounds: int) -> None:
        self._context = CryptContext(schemes=["bcrypt"], bcrypt__rounds=rounds)
        # Verified against when the email is unknown, so that answer costs a real bcrypt check
        # too: response time must not tell which emails have accounts.
        self._dummy_hash = self._context.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._context.hash(password)

    def verify(self, password: str, hashed: str | None) -> bool:
        if hashed is None:
            self._context.verify(password, self._dummy_hash)
            return False
        return self._context.verify(password, hashed)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    issued_at: float
    jti: str


class TokenCodec:
    def __init__(self, settings: Settings) -> None:
        self._key = settings.signing_key()
        self._algorithm = settings.jwt_algorithm
        self.access_ttl = timedelta(minutes=settings.access_token_expire_minutes)

    def encode_access(self, user_id: uuid.UUID, now: datetime | None = None) -> str:
        now = now or datetime.now(UTC)
        claims: dict[str, Any] = {
            "sub": str(user_id),
            # Sub-second iat: a token issued in the same second as a password change is
            # still ordered correctly against it.
            "iat": round(now.timestamp(), 6),
            "exp": int((now + self.access_ttl).timestamp()),
            "jti": uuid.uuid4().hex,
            "type": ACCESS_TOKEN_TYPE,
        }
        return jwt.encode(claims, self._key, algorithm=self._algorithm)

    def decode_access(self, token: str) -> AccessClaims | None:
        """The token's claims, or None for any token that must not be trusted."""
        try:
            # One pinned algorithm: "none" and every algorithm-confusion trick fail here.
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                options={f"require_{claim}": True for claim in REQUIRED_CLAIMS if claim != "type"},
            )
            if claims.get("type") != ACCESS_TOKEN_TYPE:
                return None
            return AccessClaims(uuid.UUID(claims["sub"]), float(claims["iat"]), str(claims["jti"]))
        except (JWTError, ValueError, TypeError, AttributeError):
            return None


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    # A fast hash is right here: the token has 256 random bits, nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()
