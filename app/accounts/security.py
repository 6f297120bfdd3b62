"""Password hashing and token primitives. Everything here is CPU work; nothing touches the database.

Hashing is slow on purpose (bcrypt, about 0.25 s at cost 12): coroutines await hash_async()
and verify_async(), which run it on the hasher's own thread, never on the event loop.
"""

import asyncio
import contextlib
import hashlib
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from jose import JWTError, jwt
from passlib.context import CryptContext

from app.config import Settings
from app.errors import ServiceUnavailable

if TYPE_CHECKING:
    from app.tracing import Tracing

T = TypeVar("T")

ACCESS_TOKEN_TYPE = "access"  # noqa: S105 - a claim value, not a secret
# Required of every token by python-jose; "type" and GENERATION_CLAIM are checked in _verify.
REQUIRED_CLAIMS = ("sub", "exp", "iat", "jti")
# The user's credential generation the token was issued for (app.accounts.access).
GENERATION_CLAIM = "gen"


# How much nicer than the rest of the process the hashing thread runs: under load, requests
# that need no bcrypt get the CPU first.
HASHING_NICENESS = 10


# Seconds a client turned away by a full hashing queue is asked to wait before retrying.
HASHING_RETRY_AFTER = 1
HASHING_BUSY = "Too many password checks in progress; try again shortly"


class PasswordHasher:
    def __init__(self, rounds: int, queue_limit: int = 32) -> None:
        self._context = CryptContext(schemes=["bcrypt"], bcrypt__rounds=rounds)
        # Verified against when the email is unknown, so that answer costs a real bcrypt check
        # too: response time must not tell which emails have accounts.
        self._dummy_hash = self._context.hash(secrets.token_urlsafe(16))
        # One thread per process: a burst of logins queues here as cheap futures, holding no
        # thread of the shared pool and no database connection, and cannot take more than one
        # core per worker. The thread runs at a lower priority, so that a login storm slows
        # logins down rather than every other request.
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="bcrypt", initializer=_lower_priority
        )
        # The queue is bounded: a flood of logins or sign-ups with made-up emails would
        # otherwise queue for seconds and starve real users. Past the limit, 503 at once.
        self._queue_limit = queue_limit
        self._queued = 0
        self._queued_lock = threading.Lock()
        # Set while tracing is on (app.lifespan): each hash then gets a span of its own.
        self.tracing: Tracing | None = None

    async def hash_async(self, password: str) -> str:
        return await self._run("password hash", self.hash, password)

    async def verify_async(self, password: str, hashed: str | None) -> bool:
        return await self._run("password verify", self.verify, password, hashed)

    async def _run(self, span_name: str, work: Callable[..., T], *args: Any) -> T:
        with self._queued_lock:
            if self._queued >= self._queue_limit:
                raise ServiceUnavailable(HASHING_RETRY_AFTER, HASHING_BUSY)
            self._queued += 1
        try:
            loop = asyncio.get_running_loop()
            if self.tracing is not None:
                # The hashing thread does not share the request's context: the span is
                # parented explicitly, so it sits in the request's trace (and its time, bcrypt
                # alone, is told apart from the wait in the queue before it).
                traced = self.tracing.in_span(span_name, work, *args)
                return await loop.run_in_executor(self._executor, traced)
            return await loop.run_in_executor(self._executor, work, *args)
        finally:
            with self._queued_lock:
                self._queued -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def hash(self, password: str) -> str:
        return self._context.hash(password)

    def verify(self, password: str, hashed: str | None) -> bool:
        if hashed is None:
            self._context.verify(password, self._dummy_hash)
            return False
        return self._context.verify(password, hashed)


def _lower_priority() -> None:
    # On Linux the nice value belongs to the thread: only the hashing thread is lowered.
    with contextlib.suppress(OSError, AttributeError):  # elsewhere: run at normal priority
        thread = threading.get_native_id()
        niceness = os.getpriority(os.PRIO_PROCESS, thread) + HASHING_NICENESS
        os.setpriority(os.PRIO_PROCESS, thread, min(niceness, 19))


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    issued_at: float
    jti: str
    expires_at: float
    generation: int


# Verified access tokens, by their exact text: a client sends the same token with every
# request for its whole life, and checking its signature again each time was most of the CPU
# an authenticated read spent outside the database. Expiry is still checked on every use.
VERIFIED_TOKENS_CACHED = 4096
# Ours are about 300 characters; anything much longer is not one, and is never cached.
MAX_TOKEN_LENGTH = 1024


class TokenCodec:
    def __init__(self, settings: Settings) -> None:
        self._key = settings.signing_key()
        self._algorithm = settings.jwt_algorithm
        self.access_ttl = timedelta(minutes=settings.access_token_expire_minutes)
        self._verified = lru_cache(maxsize=VERIFIED_TOKENS_CACHED)(self._verify)

    def encode_access(
        self, user_id: uuid.UUID, generation: int, now: datetime | None = None
    ) -> str:
        now = now or datetime.now(UTC)
        claims: dict[str, Any] = {
            "sub": str(user_id),
            # Sub-second iat: a token issued in the same second as a password change is
            # still ordered correctly against it.
            "iat": round(now.timestamp(), 6),
            "exp": int((now + self.access_ttl).timestamp()),
            "jti": uuid.uuid4().hex,
            "type": ACCESS_TOKEN_TYPE,
            GENERATION_CLAIM: generation,
        }
        return jwt.encode(claims, self._key, algorithm=self._algorithm)

    def decode_access(self, token: str) -> AccessClaims | None:
        """The token's claims, or None for any token that must not be trusted."""
        if len(token) > MAX_TOKEN_LENGTH:
            return None
        claims = self._verified(token)
        if claims is None or claims.expires_at < time.time():
            return None
        return claims

    def _verify(self, token: str) -> AccessClaims | None:
        try:
            # One pinned algorithm: "none" and every algorithm-confusion trick fail here.
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                options={f"require_{claim}": True for claim in REQUIRED_CLAIMS},
            )
            generation = claims.get(GENERATION_CLAIM)
            # A token from before generations existed has none: it is refused, not guessed.
            if claims.get("type") != ACCESS_TOKEN_TYPE or type(generation) is not int:
                return None
            return AccessClaims(
                uuid.UUID(claims["sub"]),
                float(claims["iat"]),
                str(claims["jti"]),
                float(claims["exp"]),
                generation,
            )
        except (JWTError, ValueError, TypeError, AttributeError):
            return None


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    # A fast hash is right here: the token has 256 random bits, nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


# scope["state"] key under which app.ratelimit keeps (the token's text, its claims) once it
# has decoded them, so that get_claims does not decode the same token again. Here, not in
# app.ratelimit: accounts imports no other package (scripts/check_imports.py).
ACCESS_CLAIMS = "access_claims"


def cached_claims(scope: Mapping[str, Any], token: str) -> AccessClaims | None:
    """The claims already decoded for exactly this token in this request, if any were."""
    found = scope.get("state", {}).get(ACCESS_CLAIMS)
    if found is not None and found[0] == token:
        claims: AccessClaims = found[1]
        return claims
    return None
