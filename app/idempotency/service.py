"""Idempotency-Key on every POST under /api/v1/todos and /api/v1/lists (API.md): a retry with
the same key and the same request within IDEMPOTENCY_TTL gets the first response back and
changes nothing; the same key with another request (another body, or another route) is 422.
Keys are per user. The routes' services hand over their write as an action that runs inside
the transaction begun here (app.idempotency.repository holds the statements).
"""

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import authorization
from app.accounts.security import AccessClaims
from app.database import transaction, utcnow
from app.errors import InvalidInput
from app.idempotency import repository
from app.idempotency.repository import IDEMPOTENCY_TTL, Stored

__all__ = ["IDEMPOTENCY_TTL", "Keyed", "Stored", "fingerprint", "once"]

_CREATE_TODO = ("POST", "/api/v1/todos")
KEY_REUSED = "This Idempotency-Key was already used with a different request"


def fingerprint(method: str, path: str, body: str) -> str:
    """The request as a key stands for it: the route (method and path, ids included) and the
    body (its JSON after validation: trimmed, defaults filled in)."""
    # Creating a todo hashes its body alone, as the release before did for the records it
    # wrote: a retry that reaches the other release during a rollout still replays. Every
    # other request's text starts with its method, never "{": the two forms never meet.
    text = body if (method, path) == _CREATE_TODO else f"{method} {path}\n{body}"
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Keyed:
    """A request that carries an Idempotency-Key: the key and the route it came to."""

    key: str
    method: str
    path: str

    def fingerprint(self, body: str) -> str:
        return fingerprint(self.method, self.path, body)


async def once(
    session: AsyncSession,
    claims: AccessClaims,
    keyed: Keyed,
    body: str,
    action: Callable[[], Awaitable[Stored]],
) -> Stored:
    """Run `action` once per (user, key), for the request with this `body` (its JSON). It
    runs inside this transaction, so it must not begin one (its placement retries use
    savepoints: app.lists.ordering.place_nested)."""
    owner_id, key, request_hash = claims.user_id, keyed.key, keyed.fingerprint(body)
    async with transaction(session):
        await authorization.authorize(session, claims)  # before any stored response is replayed
        record = await repository.remembered(session, owner_id, key)
        if record is not None and record.created_at < utcnow() - IDEMPOTENCY_TTL:
            await repository.forget(session, owner_id, key)
            record = None
        if record is None:
            attempt = await session.begin_nested()
            stored = await action()
            record = await repository.remember(
                session, owner_id, key, request_hash, stored, utcnow()
            )
            if record is None:
                await attempt.commit()
                return stored
            # A concurrent request with this key won: ours must leave nothing behind.
            await attempt.rollback()
    if record.request_hash != request_hash:
        raise InvalidInput(("header", "Idempotency-Key"), KEY_REUSED)
    return record.response
