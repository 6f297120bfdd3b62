"""What keeps a PostgreSQL connection whose state cannot be trusted out of the request pool.

Listeners on the request engine (create_db_engine); none of them runs when a request goes well
but discard_closed, which reads one attribute per checkout.
"""

from typing import Any

from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry


def discard_closed(_dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
    """Pool "checkout" event: never hand out a connection the server closed.

    asyncpg reads its sockets all the time, so a connection the server closed (a restart,
    pg_terminate_backend) is already known to be closed here. Checking that costs nothing;
    SQLAlchemy's pre-ping would cost up to three round trips (BEGIN, ping, ROLLBACK) on
    every checkout. The pool replaces a discarded connection and retries the checkout."""
    if record.driver_connection is None or record.driver_connection.is_closed():
        raise DisconnectionError("connection closed by the server")


def invalidate_after_failed_begin(context: ExceptionContext) -> None:
    """Engine "handle_error" event: a connection whose BEGIN failed is closed, not pooled.

    Issue 29: one pooled connection failed every transaction with "SAVEPOINT can only be used
    in transaction blocks" until a restart. asyncpg's Transaction.start() records itself as
    the connection's transaction (`Connection._top_xact`) before it sends BEGIN and keeps that
    record when BEGIN fails (asyncpg 0.32 transaction.py:105-110, 145-149), and a failed
    Transaction refuses rollback() (transaction.py:162-165, 194-195). SQLAlchemy's adapter keeps
    the Transaction only once BEGIN has succeeded (dialects/postgresql/asyncpg.py:898-915), so
    its rollback() and commit() do nothing (925-941). Every later transaction on that
    connection is then taken by asyncpg for a nested one (transaction.py:111-128): it sends
    SAVEPOINT, outside any transaction on the server, and fails the same way, for ever.

    BEGIN fails that way when the server answers it with an error on a connection that stays
    open: a cancel (pg_cancel_backend, an operator or a pooler cancelling), or the statement
    timeout when the backend is held up mid-statement (a logging collector that cannot keep
    up, a starved CPU). A cancelled request or asyncpg's own timeout (CancelledError,
    TimeoutError) is not the cause: SQLAlchemy treats both as "exit exceptions" and
    invalidates the connection already (util/concurrency.py:30-35, engine/base.py:2231-2242
    and 2356-2364), and so a connection the server closed (is_disconnect, asyncpg.py:1226).

    What SQLAlchemy offers could not do it by itself. The pool's reset on return
    (reset_on_return="rollback") calls the adapter's rollback(), which has no transaction to
    roll back; the dialect's is_disconnect() sees an open connection; pool_pre_ping runs its
    ping outside a transaction, which succeeds, and would cost a round trip per checkout.
    asyncpg's own Connection.reset() clears the record, but with a ROLLBACK round trip on every
    checkin. So this hook marks the error a disconnect, and SQLAlchemy invalidates that one
    connection (not the rest of the pool) as it would after a lost connection; the request's
    error says so (connection_invalidated), which app.errors answers with a 503.

    When: a statement failed on a connection that is not in autocommit mode (it had to begin a
    transaction first) while the server reports no transaction open (asyncpg's
    is_in_transaction(), from the server's last ReadyForQuery). A statement that fails after a
    successful BEGIN leaves the server in its (failed) transaction, and is not touched. It runs
    only when a statement has raised, so it costs the requests that succeed nothing."""
    connection = context.connection
    if context.is_disconnect or context.execution_context is None or connection is None:
        return  # already invalidated, or not a statement's error (a COMMIT's, a connect's)
    if connection.invalidated:
        return
    pooled = connection.connection
    if getattr(pooled.dbapi_connection, "autocommit", True):
        return  # no BEGIN was sent: the statement was a transaction of its own
    driver = pooled.driver_connection
    if driver is None or driver.is_in_transaction():
        return  # BEGIN succeeded: the rollback that follows ends the transaction as usual
    context.is_disconnect = True
    context.invalidate_pool_on_disconnect = False
