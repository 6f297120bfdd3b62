"""Issue 29 HIGH 2 against a real server (gunicorn, PostgreSQL): one account's list moves
cannot take the service down, and readiness does not queue behind the request pool."""

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from app.lists import renumber
from tests.conftest import TempPostgres
from tests.faults import move_attack
from tests.runtime.server import app_env, gunicorn


def _wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _lock_waiters(engine: Engine) -> int:
    """The service's backends waiting for a lock now."""
    with engine.connect() as connection:
        return (
            connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = 'todo-api' AND wait_event_type = 'Lock'"
                )
            )
            or 0
        )


def test_readiness_answers_while_the_request_pool_is_exhausted(
    database: TempPostgres, tmp_path: Path
) -> None:
    """The pool's only connection waits on a row lock (no lock timeout, so it stays): the
    readiness probe still answers 200 within a second (it used to wait DB_POOL_TIMEOUT for a
    pooled connection, then 503: Kubernetes would take every such pod out of service)."""
    env = app_env(
        database.url, tmp_path,
        DB_POOL_SIZE="1", DB_MAX_OVERFLOW="0", DB_POOL_TIMEOUT="5", LOCK_TIMEOUT_MS="0",
        DB_STATEMENT_TIMEOUT_MS="30000",
    )  # fmt: skip
    observer = create_engine(database.url)
    with gunicorn(env, tmp_path, workers=1) as server:
        _, headers = move_attack.account(server)
        with server.client() as client:
            todo = client.post("/api/v1/todos", json={"title": "held"}, headers=headers).json()
        with observer.connect() as held, ThreadPoolExecutor(1) as pool:
            held.execute(
                text("SELECT id FROM todos WHERE id = :id FOR UPDATE"),
                {"id": uuid.UUID(todo["id"])},
            )

            def write() -> int:
                with server.client() as client:
                    path = f"/api/v1/todos/{todo['id']}"
                    return client.patch(path, json={"title": "w"}, headers=headers).status_code

            pending = pool.submit(write)
            _wait_until(lambda: _lock_waiters(observer) >= 1, timeout=10)
            with server.client() as client:
                started = time.monotonic()
                ready = client.get("/health/ready")
                took = time.monotonic() - started
            held.rollback()
            assert pending.result(timeout=30) == 200
        print(
            f"  /health/ready with the request pool exhausted: {ready.status_code} in {took:.3f} s"
        )
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready", "database": "ok"}
        assert took < 1.0, took
    observer.dispose()


ATTACKERS = 4  # concurrent connections, each moving todos into its gap
# Each attacker's pace: enough to exhaust its gap every few seconds (~36-88 moves), and no
# more, so that the test measures what the fix is about (work per move, lock waits, held
# connections) rather than how many requests two shared cores can serve at all, which is a
# request-rate limit's business (four unpaced clients of any kind slow a reader down there).
MOVES_PER_SECOND = 12
ATTACK_SECONDS = 15
READS = 200  # the other account's reads, idle and under attack


def test_the_move_attack_on_a_10000_todo_list_leaves_other_accounts_served(
    database: TempPostgres, tmp_path: Path
) -> None:
    """Issue 29 HIGH 2: alternating moves into one gap of a 10,000-todo list (populated with
    SQL), from ATTACKERS connections at once, while another account reads. Every move ends
    with a bounded status in bounded time (no whole-list rewrite, no retried rebalance, lock
    waits cut at LOCK_TIMEOUT_MS), only the todos around the gap are ever rewritten, and the
    reader's p99 stays under 3x its idle value."""
    env = app_env(database.url, tmp_path)
    observer = create_engine(database.url)
    with gunicorn(env, tmp_path, workers=2) as server:
        result = move_attack.run(
            server, observer, todos=10_000, attackers=ATTACKERS,
            moves_per_second=MOVES_PER_SECOND, seconds=ATTACK_SECONDS, reads=READS,
        )  # fmt: skip
    observer.dispose()
    print(f"\n  move attack: {result.summary(10_000)}")
    assert set(result.reader_statuses) == {200}
    assert result.moves[200] > ATTACKERS * 90, "the attack never got going: it proves nothing"
    assert result.rewritten > 2, "no gap ever ran out of keys: the test proves nothing"
    assert set(result.moves) <= {200, 412, 503}, result.moves
    assert result.slowest_move_s < 5, result.slowest_move_s  # within the statement timeout
    # Only the todos around the gaps, never the list: the movers and their windows.
    assert result.rewritten <= ATTACKERS * (2 * renumber.MAX_WINDOW + 3), result.rewritten
    assert result.longest_key <= 32
    assert result.left_running == 0  # nothing left running or retrying after the attack
    assert result.gaps_in_order
    # 3x idle, or 20 ms when idle is a few ms: on two shared cores the attackers' own CPU moves a
    # 3 ms p99 past 9 ms (seen once in CI: 11.4 ms), while the whole-list rewrite this guards
    # against took the reader to 32 ms (10 ms idle), which fails either bound.
    bound = max(3 * result.idle_p99_s, 0.020)
    assert result.attack_p99_s < bound, (result.attack_p99_s, result.idle_p99_s)
