"""A login (one family of refresh tokens) ends for good: logout and reuse detection win every
interleaving with the refreshes of that login, and a login has an absolute lifetime.

The races are provoked, not hoped for: on PostgreSQL (direct and behind PgBouncer) the test
holds the user's row lock, so a refresh stops right at its token INSERT (the foreign key check
waits) while it holds whatever it locked before; the logout (or the reuse) is sent then, and
the test lets go only once the database shows both waiting (pg_stat_activity). That is the
interleaving the issue found: a revocation that waits behind the refresh and then misses the
token it inserted. On SQLite (one writer) the same requests simply run; the loops below race
real concurrent requests on every backend.
"""

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from typing import Any

from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import Engine, Uuid, column, select, table, text, update

from app.accounts.models import RefreshToken
from app.config import Settings
from app.database import UTCDateTime, utcnow
from app.main import create_app
from tests.accounts.helpers import make_superuser
from tests.conftest import ApiUser, assert_bearer_401, empty_tables, login, make_user

REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"
TRIALS = 6


def refresh(client: TestClient, token: str) -> Response:
    return client.post(REFRESH, json={"refresh_token": token})


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def family_of(db_engine: Engine, raw: str) -> uuid.UUID:
    with db_engine.connect() as connection:
        family = connection.scalar(
            select(RefreshToken.family_id).where(RefreshToken.token_hash == digest(raw))
        )
    assert family is not None
    return family


def unrevoked_tokens(db_engine: Engine, family: uuid.UUID) -> int:
    """Tokens of the login the database would still consider (revoked_at not set)."""
    with db_engine.connect() as connection:
        rows = connection.scalars(
            select(RefreshToken.id).where(
                RefreshToken.family_id == family, RefreshToken.revoked_at.is_(None)
            )
        ).all()
    return len(rows)


def age_rotation(db_engine: Engine, raw: str, by: timedelta = timedelta(hours=1)) -> None:
    """As if the token had been exchanged `by` ago: past any grace window."""
    where = RefreshToken.token_hash == digest(raw)
    with db_engine.begin() as connection:
        # Computed here: SQLite has no timestamp arithmetic.
        rotated_at = connection.scalar(select(RefreshToken.rotated_at).where(where))
        assert rotated_at is not None
        connection.execute(update(RefreshToken).where(where).values(rotated_at=rotated_at - by))


def lock_waiters(db_engine: Engine) -> int:
    with db_engine.connect() as connection:
        count: int = connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return count


def wait_until(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the race was not set up in time"
        time.sleep(0.02)


@contextmanager
def refresh_stopped_at_its_insert(
    client: TestClient, db_engine: Engine, user_id: str, token: str
) -> Iterator[tuple[Future[Response], Callable[[Future[Response]], None]]]:
    """A refresh of `token` in flight, stopped at its INSERT (PostgreSQL), and a function that
    waits until a second request is blocked behind it too. Leaving the block lets both go."""
    pool = ThreadPoolExecutor(2)
    postgres = db_engine.dialect.name == "postgresql"
    holder = db_engine.connect()
    transaction = holder.begin()
    try:
        if postgres:
            holder.execute(
                text("SELECT id FROM users WHERE id = :id FOR UPDATE"), {"id": uuid.UUID(user_id)}
            )
        pending = pool.submit(refresh, client, token)
        if postgres:
            wait_until(lambda: lock_waiters(db_engine) >= 1)
        else:
            pending.result()

        def blocked_behind(other: Future[Response]) -> None:
            if postgres:
                # The second request waits on the refresh's locks, or (the bug) does not
                # wait at all and is done already.
                wait_until(lambda: other.done() or lock_waiters(db_engine) >= 2)

        yield pending, blocked_behind
    finally:
        transaction.rollback()
        holder.close()
        pool.shutdown(wait=True)


def assert_login_ended(
    client: TestClient, db_engine: Engine, family: uuid.UUID, *tokens: str
) -> None:
    for token in tokens:
        assert_bearer_401(refresh(client, token))
    assert unrevoked_tokens(db_engine, family) == 0


def test_logout_wins_against_a_refresh_in_flight(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    family = family_of(db_engine, user.refresh_token)
    first = refresh(client, user.refresh_token).json()["refresh_token"]
    in_flight = refresh_stopped_at_its_insert(client, db_engine, user.id, first)
    # The pool is left last: leaving in_flight first lets the refresh, and so both, go.
    with ThreadPoolExecutor(1) as pool, in_flight as (pending, behind):
        logout = pool.submit(client.post, LOGOUT, json={"refresh_token": user.refresh_token})
        behind(logout)
    assert logout.result().status_code == 204
    issued = pending.result()
    assert issued.status_code in {200, 401}, issued.text
    # Whatever the refresh got, the login is over: no token of it is usable, in the database
    # either.
    late = [issued.json()["refresh_token"]] if issued.status_code == 200 else []
    assert_login_ended(client, db_engine, family, first, *late)


def test_reuse_detection_wins_against_a_refresh_in_flight(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    family = family_of(db_engine, user.refresh_token)
    current = refresh(client, user.refresh_token).json()["refresh_token"]
    age_rotation(db_engine, user.refresh_token)  # a stale copy: its re-use is reuse
    in_flight = refresh_stopped_at_its_insert(client, db_engine, user.id, current)
    # The pool is left last: leaving in_flight first lets the refresh, and so both, go.
    with ThreadPoolExecutor(1) as pool, in_flight as (pending, behind):
        stale = pool.submit(refresh, client, user.refresh_token)
        behind(stale)
    assert_bearer_401(stale.result())
    issued = pending.result()
    late = [issued.json()["refresh_token"]] if issued.status_code == 200 else []
    assert_login_ended(client, db_engine, family, current, *late)


def _attacker_loop(client: TestClient, start: str, stop: threading.Event) -> list[str]:
    """Refresh a chain as fast as possible until told to stop; every token handed out."""
    handed_out, current = [], start
    while not stop.is_set():
        response = refresh(client, current)
        if response.status_code != 200:
            assert response.status_code == 401, response.text
            break
        current = response.json()["refresh_token"]
        handed_out.append(current)
    return handed_out


def _chain_grew(
    db_engine: Engine, families: list[uuid.UUID], tokens: int, *loops: Future[list[str]]
) -> bool:
    grown = sum(unrevoked_tokens(db_engine, family) for family in families) >= tokens
    return grown or any(loop.done() for loop in loops)


def _race_loop_against(
    client: TestClient, user: ApiUser, db_engine: Engine, end: Callable[[str, str], Response]
) -> None:
    for _ in range(TRIALS):
        tokens = login(client, user.email)
        victim = str(tokens["refresh_token"])
        family = family_of(db_engine, victim)
        stolen = refresh(client, victim).json()["refresh_token"]
        stop = threading.Event()
        with ThreadPoolExecutor(1) as pool:
            attacker = pool.submit(_attacker_loop, client, stolen, stop)
            wait_until(partial(_chain_grew, db_engine, [family], 4, attacker))
            ended = end(victim, stolen)
            # Everything the attacker is given from now on must be dead, and so must all it
            # was given before.
            stop.set()
            handed_out = attacker.result()
        assert ended.status_code in {204, 401}, ended.text
        assert_login_ended(client, db_engine, family, stolen, *handed_out[-3:])


def test_an_attacker_refresh_loop_does_not_outlive_logout(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    _race_loop_against(
        client,
        user,
        db_engine,
        lambda victim, _: client.post(LOGOUT, json={"refresh_token": victim}),
    )


def test_an_attacker_refresh_loop_does_not_outlive_reuse_detection(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    def present_stale(victim: str, _: str) -> Response:
        age_rotation(db_engine, victim)
        return refresh(client, victim)

    _race_loop_against(client, user, db_engine, present_stale)


def test_presenting_a_revoked_token_again_ends_the_login_again(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    """A login whose stale token is revoked while a newer one is not (what the race used to
    leave behind, or a release before this one writes): presenting the stale token again is
    reuse again, and ends the newer one too."""
    family = family_of(db_engine, user.refresh_token)
    newer = refresh(client, user.refresh_token).json()["refresh_token"]
    with db_engine.begin() as connection:
        connection.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == digest(user.refresh_token))
            .values(revoked_at=utcnow())
        )
    age_rotation(db_engine, user.refresh_token)
    assert_bearer_401(refresh(client, user.refresh_token))
    assert_login_ended(client, db_engine, family, newer)


# Spelled out rather than imported: this file's other tests run on a schema without it too.
LOGINS = table("logins", column("id", Uuid), column("expires_at", UTCDateTime))


def login_ends(db_engine: Engine, family: uuid.UUID) -> Any:
    with db_engine.connect() as connection:
        return connection.scalar(select(LOGINS.c.expires_at).where(LOGINS.c.id == family))


def test_a_login_past_its_absolute_lifetime_is_over(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    family = family_of(db_engine, user.refresh_token)
    current = user.refresh_token
    for _ in range(3):  # refreshing does not move the login's end
        before = login_ends(db_engine, family)
        current = refresh(client, current).json()["refresh_token"]
        assert login_ends(db_engine, family) == before
    with db_engine.begin() as connection:
        connection.execute(
            LOGINS.update()
            .where(LOGINS.c.id == family)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert_bearer_401(refresh(client, current))
    # Other logins of the user are untouched.
    assert refresh(client, str(login(client, user.email)["refresh_token"])).status_code == 200


def test_deactivation_racing_refresh_loops_wins_without_a_503(
    client: TestClient, db_engine: Engine
) -> None:
    """The admin's deactivation and the user's refreshes lock the same rows: whatever the
    interleaving, the deactivation answers 200 (never a deadlock's 503) and every chain dies."""
    admin = make_superuser(client, db_engine)
    for _ in range(TRIALS):
        victim = make_user(client)
        chains = [str(login(client, victim.email)["refresh_token"]) for _ in range(3)]
        families = [family_of(db_engine, chain) for chain in chains]
        stop = threading.Event()
        with ThreadPoolExecutor(len(chains)) as pool:
            loops = [pool.submit(_attacker_loop, client, chain, stop) for chain in chains]
            wait_until(partial(_chain_grew, db_engine, families, 6, *loops))
            deactivated = client.patch(
                f"/api/v1/users/{victim.id}",
                json={"is_active": False},
                headers=admin.headers,
            )
            stop.set()
            handed_out = [loop.result() for loop in loops]
        assert deactivated.status_code == 200, deactivated.text
        for family, chain, tokens in zip(families, chains, handed_out, strict=True):
            for token in [chain, *tokens[-2:]]:
                assert_bearer_401(refresh(client, token))
            assert unrevoked_tokens(db_engine, family) == 0


def test_no_refresh_token_outlives_its_login(settings: Settings, db_engine: Engine) -> None:
    """A refresh 15 days into a 20-day login: the new token's 14 days are cut to the 5 left
    (REFRESH_TOKEN_ABSOLUTE_DAYS), and the login's end does not move."""
    short = settings.model_copy(update={"refresh_token_absolute_days": 20})
    try:
        with TestClient(create_app(short)) as client:
            user = make_user(client)
            family = family_of(db_engine, user.refresh_token)
            ends = login_ends(db_engine, family)
            assert abs(ends - (utcnow() + timedelta(days=20))) < timedelta(minutes=1)
            five_days_left = ends - timedelta(days=15)  # begun 15 days ago
            with db_engine.begin() as connection:
                connection.execute(
                    LOGINS.update().where(LOGINS.c.id == family).values(expires_at=five_days_left)
                )
            body = refresh(client, user.refresh_token).json()
            with db_engine.connect() as connection:
                expires = connection.scalar(
                    select(RefreshToken.expires_at).where(
                        RefreshToken.token_hash == digest(body["refresh_token"])
                    )
                )
            assert expires == five_days_left
            assert login_ends(db_engine, family) == five_days_left
    finally:
        empty_tables(db_engine)
