"""Run a transaction again when the database aborted it for a conflict, not for a fault.

PostgreSQL ends one transaction of a deadlock (SQLSTATE 40P01) and, at stricter isolation
levels, a transaction that cannot be serialised (40001). Neither says anything about the
request: run again, the transaction sees the winner's committed work and decides on it. The
paths that lock logins and users take their locks in one order (app.accounts.login_repository), so a
deadlock there would be a bug; retrying keeps it from ever being a 503 for the client.
"""

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

RETRIED_SQLSTATES = frozenset({"40P01", "40001"})
ATTEMPTS = 3
T = TypeVar("T")


def _sqlstate(exc: DBAPIError) -> str | None:
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    return code if isinstance(code, str) else None


async def retrying(work: Callable[[], Awaitable[T]]) -> T:
    """await work(), again (up to ATTEMPTS in all) while it fails with a retried SQLSTATE.
    work must be a whole transaction (`async with transaction(session):`), which rolled back."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await work()
        except DBAPIError as exc:
            if attempt == ATTEMPTS or _sqlstate(exc) not in RETRIED_SQLSTATES:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
