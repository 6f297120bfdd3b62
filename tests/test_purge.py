"""Expired login failures, idempotency records and ended logins go away by themselves (no
external cron); the ones still in force stay."""

import asyncio
import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, select, update

from app.accounts.models import Login, LoginFailure, RefreshToken
from app.config import Settings
from app.database import create_sessionmaker
from app.engines import create_db_engine
from app.idempotency.models import IdempotencyKey
from app.main import create_app
from app.purge import BATCH, purge_expired
from app.todos.models import Todo
from tests.conftest import ApiUser, login

WINDOW = 900
LOGOUT = "/api/v1/auth/logout"
REFRESH = "/api/v1/auth/refresh"


def seed(client: TestClient, user: ApiUser, db_engine: Engine, old: int, live: int) -> list[str]:
    """`old` expired and `live` current rows of each kind, the expired ones made by the API
    and then moved into the past (the bulk of old failures is inserted directly). Returns the
    ids of the todos made, in key order."""
    ids = []
    for n in range(old + live):
        response = client.post(
            "/api/v1/todos",
            json={"title": f"t{n}"},
            headers={**user.headers, "Idempotency-Key": f"key-{n}"},
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    now = datetime.now(UTC)
    with db_engine.begin() as connection:
        keys = [f"key-{n}" for n in range(old)]
        connection.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key.in_(keys))
            .values(created_at=now - timedelta(hours=25))
        )
        rows = [
            {
                "id": uuid.uuid4(),
                "email": f"gone-{n % 7}@example.com",
                "client_address": "203.0.113.7",
                "failed_at": now - timedelta(seconds=WINDOW + 60 + n),
            }
            for n in range(old)
        ] + [
            {
                "id": uuid.uuid4(),
                "email": "recent@example.com",
                "client_address": "203.0.113.7",
                "failed_at": now - timedelta(seconds=60),
            }
            for _ in range(live)
        ]
        connection.execute(insert(LoginFailure), rows)
    return ids


def counts(db_engine: Engine) -> tuple[int, int]:
    with db_engine.connect() as connection:
        failures = connection.scalar(select(func.count()).select_from(LoginFailure)) or 0
        records = connection.scalar(select(func.count()).select_from(IdempotencyKey)) or 0
    return failures, records


def todo_count(db_engine: Engine) -> int:
    with db_engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(Todo)) or 0


def test_purge_deletes_the_expired_rows_in_batches_and_keeps_the_live_ones(
    client: TestClient, user: ApiUser, db_engine: Engine, settings: Settings
) -> None:
    ids = seed(client, user, db_engine, old=3, live=2)
    with db_engine.begin() as connection:  # more old failures than two batches hold
        connection.execute(
            insert(LoginFailure),
            [
                {
                    "id": uuid.uuid4(),
                    "email": "bulk@example.com",
                    "client_address": "198.51.100.1",
                    "failed_at": datetime.now(UTC) - timedelta(days=2),
                }
                for _ in range(2 * BATCH + 10)
            ],
        )
    assert counts(db_engine) == (2 * BATCH + 10 + 3 + 2, 5)

    async def purge() -> int:
        engine = create_db_engine(settings)
        try:
            return await purge_expired(create_sessionmaker(engine), settings, datetime.now(UTC))
        finally:
            await engine.dispose()

    assert asyncio.run(purge()) == 2 * BATCH + 10 + 3 + 3
    assert counts(db_engine) == (2, 2)
    with db_engine.connect() as connection:
        left = connection.scalars(select(IdempotencyKey.key).order_by(IdempotencyKey.key)).all()
    assert left == ["key-3", "key-4"]
    # A live record still replays: the todo key-3 made, not a new one.
    todos_before = todo_count(db_engine)
    replay = client.post(
        "/api/v1/todos", json={"title": "t3"}, headers={**user.headers, "Idempotency-Key": "key-3"}
    )
    assert replay.status_code == 201
    assert replay.json()["id"] == ids[3]
    assert todo_count(db_engine) == todos_before


def test_every_worker_purges_by_itself_in_the_background(
    client: TestClient, user: ApiUser, db_engine: Engine, settings: Settings
) -> None:
    seed(client, user, db_engine, old=4, live=3)
    assert counts(db_engine) == (7, 7)
    app = create_app(settings.model_copy(update={"purge_interval_seconds": 0.2}))
    with TestClient(app):
        deadline = time.monotonic() + 10
        while counts(db_engine) != (3, 3) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert counts(db_engine) == (3, 3)


def test_the_purge_runs_every_five_minutes_by_default() -> None:
    assert Settings(_env_file=None).purge_interval_seconds == 300


def _family(db_engine: Engine, raw: str) -> uuid.UUID:
    digest = hashlib.sha256(raw.encode()).hexdigest()
    with db_engine.connect() as connection:
        family = connection.scalar(
            select(RefreshToken.family_id).where(RefreshToken.token_hash == digest)
        )
    assert family is not None
    return family


def _logins_and_tokens(db_engine: Engine) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """The logins stored, and the logins that still have refresh tokens stored."""
    with db_engine.connect() as connection:
        stored = set(connection.scalars(select(Login.id)).all())
        families = set(connection.scalars(select(RefreshToken.family_id).distinct()).all())
    return stored, families


def test_purge_deletes_ended_logins_with_their_tokens_and_keeps_live_ones(
    client: TestClient, user: ApiUser, db_engine: Engine, settings: Settings
) -> None:
    """Logged out, past its absolute end, or with every refresh token expired: nothing can
    refresh that login again, so its row and its tokens go. A live login stays, and works."""
    live = _family(db_engine, user.refresh_token)
    logged_out, past_its_end, idle = (
        str(login(client, user.email)["refresh_token"]) for _ in range(3)
    )
    ended_by = {raw: _family(db_engine, raw) for raw in (logged_out, past_its_end, idle)}
    ended = set(ended_by.values())
    assert client.post(LOGOUT, json={"refresh_token": logged_out}).status_code == 204
    past = datetime.now(UTC) - timedelta(minutes=1)
    with db_engine.begin() as connection:
        ends = update(Login).where(Login.id == ended_by[past_its_end])
        connection.execute(ends.values(expires_at=past))
        expires = update(RefreshToken).where(RefreshToken.family_id == ended_by[idle])
        connection.execute(expires.values(expires_at=past))
    assert _logins_and_tokens(db_engine) == (ended | {live}, ended | {live})

    async def purge() -> int:
        engine = create_db_engine(settings)
        try:
            return await purge_expired(create_sessionmaker(engine), settings, datetime.now(UTC))
        finally:
            await engine.dispose()

    assert asyncio.run(purge()) == 3
    assert _logins_and_tokens(db_engine) == ({live}, {live})
    for raw in (logged_out, past_its_end, idle):
        assert client.post(REFRESH, json={"refresh_token": raw}).status_code == 401
    assert _logins_and_tokens(db_engine) == ({live}, {live})  # no 401 brought one back
    assert client.post(REFRESH, json={"refresh_token": user.refresh_token}).status_code == 200
