"""The request pool hands out no PostgreSQL connection it cannot trust (create_db_engine)."""

import logging
from typing import Any

from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry

logger = logging.getLogger(__name__)


def discard_unusable(_dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
    """Pool "checkout" event: a connection the server closed, or one whose BEGIN failed, is
    discarded; the pool replaces it and retries the checkout (SQLAlchemy's "pessimistic"
    disconnect handling, with a check of our own instead of a ping).

    Closed: asyncpg reads its sockets all the time, so a connection the server closed (a
    restart, pg_terminate_backend) is already known to be closed here. Checking that costs
    nothing; SQLAlchemy's pre-ping would cost up to three round trips (BEGIN, ping, ROLLBACK)
    on every checkout.

    BEGIN failed (issue 29: one pooled connection failed every transaction with "SAVEPOINT can
    only be used in transaction blocks" until a restart): asyncpg's Transaction.start() records
    itself as the connection's transaction, `Connection._top_xact`, before it sends BEGIN, and
    keeps that record when BEGIN fails (asyncpg 0.32 transaction.py:105-110, 145-149); only its
    commit or rollback clears it, and a failed Transaction refuses both (162-165, 175-176,
    194-195). SQLAlchemy's adapter keeps the Transaction only once BEGIN has succeeded
    (dialects/postgresql/asyncpg.py:898-915), so its rollback() and commit() do nothing
    (925-941). asyncpg then takes every later transaction on the connection for a nested one
    (transaction.py:111-128) and sends SAVEPOINT, outside any transaction on the server.
    Between requests no transaction is open, so a record left here means exactly that.

    What sets it off is the server answering BEGIN with an error on a connection that stays
    open: a cancel (pg_cancel_backend, an operator, a pooler) or the statement timeout while
    the backend is held up (a logging collector that cannot keep up, a starved CPU). A
    cancelled request and asyncpg's own timeout (CancelledError, TimeoutError) do not: to
    SQLAlchemy they are "exit exceptions" and it invalidates the connection already
    (util/concurrency.py:30-35, engine/base.py:2231-2242 and 2356-2364), as it does a closed
    connection (the dialect's is_disconnect, asyncpg.py:1226-1228).

    Why not what SQLAlchemy offers: the pool's reset on return (reset_on_return="rollback")
    calls the adapter's rollback(), which has no transaction to roll back; is_disconnect() sees
    an open connection; pool_pre_ping pings outside a transaction, which succeeds (and costs a
    round trip per checkout). A "handle_error" listener marking the error a disconnect works
    too, but once any dialect-level listener exists SQLAlchemy looks up the dialect's event
    dispatch on every statement (engine/base.py:1966; bench/cost.py: +2 Python calls per todo
    read); this check is one attribute read in a listener that runs anyway. asyncpg's own
    Connection.reset() clears the record, with a ROLLBACK round trip on every checkin."""
    driver = record.driver_connection
    if driver is None or driver.is_closed():
        raise DisconnectionError("connection closed by the server")
    if driver._top_xact is not None:
        # Rare and worth seeing (issue 29 was observed once, unexplained): a BEGIN failed.
        logger.warning("discarding a pooled connection whose BEGIN failed")
        raise DisconnectionError("a transaction on this connection failed to begin")
