"""API.md "Rate limits (v1.2)" in process, on SQLite and PostgreSQL, counted in memory and in
a real Redis: the fields, 429 with Retry-After, a refused request doing nothing, the keys."""

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Engine, func, select

from app.config import Settings
from app.main import create_app
from app.ratelimit.limiter import MISSES
from app.todos.models import Todo
from tests.conftest import ApiUser, make_user
from tests.isolation import free_port

FIELD = re.compile(r'"(user|address)";r=(\d+);t=(\d+)')


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    server = request.getfixturevalue("redis")
    server.flush()
    url: str = server.url
    return url


@contextmanager
def limited(
    settings: Settings, client: tuple[str, int] = ("testclient", 50000), **overrides: Any
) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update=overrides))
    with TestClient(app, client=client) as test_client:
        yield test_client


def remaining(response: Any) -> tuple[str, int, int]:
    match = FIELD.fullmatch(response.headers["ratelimit"])
    assert match, response.headers.get("ratelimit")
    return match[1], int(match[2]), int(match[3])


def misses() -> float:
    return sum(MISSES.labels(reason)._value.get() for reason in ("failed", "paused"))


def todo_count(engine: Engine, user: ApiUser) -> int:
    with engine.connect() as connection:
        statement = select(func.count()).where(Todo.owner_id == uuid.UUID(user.id))
        return int(connection.execute(statement).scalar_one())


def test_a_user_past_the_quota_gets_429_and_the_refused_write_does_nothing(
    settings: Settings, storage: str, db_engine: Engine
) -> None:
    with limited(settings, rate_limit_storage=storage, rate_limit_user="3/minute") as client:
        user = make_user(client)
        seen = []
        for _ in range(3):
            response = client.get("/api/v1/todos", headers=user.headers)
            assert response.status_code == 200, response.text
            assert response.headers["ratelimit-policy"] == '"user";q=3;w=60'
            seen.append(remaining(response))
        assert [(name, left) for name, left, _ in seen] == [("user", 2), ("user", 1), ("user", 0)]
        assert all(0 <= reset <= 60 for _, _, reset in seen)

        refused = client.post("/api/v1/todos", json={"title": "x"}, headers=user.headers)

        assert refused.status_code == 429
        assert set(refused.json()) == {"detail"}
        assert int(refused.headers["retry-after"]) >= 1
        assert remaining(refused)[:2] == ("user", 0)
        assert refused.headers["ratelimit-policy"] == '"user";q=3;w=60'
        assert refused.headers["cache-control"] == "no-store"
        assert refused.headers["x-request-id"]
        assert todo_count(db_engine, user) == 0
        # Other users and anonymous clients keep their own quotas.
        other = make_user(client)
        assert client.get("/api/v1/todos", headers=other.headers).status_code == 200


def test_without_a_valid_token_the_address_counts(settings: Settings, storage: str) -> None:
    with limited(settings, rate_limit_storage=storage, rate_limit_address="3/minute") as client:
        anonymous = client.get("/api/v1/todos")
        forged = client.get("/api/v1/todos", headers={"Authorization": "Bearer not.a.token"})
        signup = client.post("/api/v1/auth/register", json={"email": "bad"})
        assert [r.status_code for r in (anonymous, forged, signup)] == [401, 401, 422]
        assert [remaining(r)[:2] for r in (anonymous, forged, signup)] == [
            ("address", 2),
            ("address", 1),
            ("address", 0),
        ]
        assert anonymous.headers["ratelimit-policy"] == '"address";q=3;w=60'

        refused = client.post(
            "/api/v1/auth/register", json={"email": "a@example.com", "password": "x" * 12}
        )

        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        # Never limited, and without the fields.
        for path in ("/", "/health", "/health/ready", "/metrics", "/docs", "/openapi.json"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert "ratelimit" not in response.headers, path


def test_an_ipv6_client_counts_by_its_64(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"rate_limit_address": "2/minute"}))
    # One lifespan (one limiter); the other clients share it without starting their own.
    with TestClient(app, client=("2001:db8:1:2::1", 1)) as first:
        same_64 = TestClient(app, client=("2001:db8:1:2:ffff::9", 1))
        next_64 = TestClient(app, client=("2001:db8:1:3::1", 1))
        assert remaining(first.get("/api/v1/todos"))[1] == 1
        assert remaining(same_64.get("/api/v1/todos"))[1] == 0
        assert same_64.get("/api/v1/todos").status_code == 429
        assert remaining(next_64.get("/api/v1/todos"))[1] == 1


def test_every_limit_holds_and_the_fields_name_the_tightest(
    settings: Settings, storage: str
) -> None:
    with limited(
        settings, rate_limit_storage=storage, rate_limit_user="10/minute;3/hour"
    ) as client:
        user = make_user(client)
        first = client.get("/api/v1/todos", headers=user.headers)
        assert first.headers["ratelimit-policy"] == '"user";q=3;w=3600'
        assert remaining(first)[1] == 2
        client.get("/api/v1/todos", headers=user.headers)
        client.get("/api/v1/todos", headers=user.headers)
        refused = client.get("/api/v1/todos", headers=user.headers)
        assert refused.status_code == 429
        assert refused.headers["ratelimit-policy"] == '"user";q=3;w=3600'


def test_switched_off_nothing_is_counted(settings: Settings) -> None:
    with limited(settings, rate_limit_enabled=False, rate_limit_address="1/minute") as client:
        for _ in range(3):
            response = client.get("/api/v1/todos")
            assert response.status_code == 401
            assert "ratelimit" not in response.headers


def test_a_missing_storage_serves_uncounted_and_warns_once(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    before = misses()
    with (
        caplog.at_level(logging.WARNING, logger="app.ratelimit.limiter"),
        limited(settings, rate_limit_storage=nowhere, rate_limit_address="1/minute") as client,
    ):
        responses = [client.get("/api/v1/todos") for _ in range(5)]
    assert [r.status_code for r in responses] == [401] * 5
    assert all("ratelimit" not in r.headers for r in responses)
    assert misses() - before == 5
    warnings = [r for r in caplog.records if "Rate-limit storage unavailable" in r.getMessage()]
    assert len(warnings) == 1


def test_an_access_token_is_decoded_once_per_request(settings: Settings) -> None:
    with limited(settings) as client:
        user = make_user(client)
        codec = client.app.state.token_codec  # type: ignore[attr-defined]
        decoded = []
        real = codec.decode_access

        def counting(token: str) -> Any:
            decoded.append(token)
            return real(token)

        codec.decode_access = counting
        assert client.get("/api/v1/todos", headers=user.headers).status_code == 200
        assert decoded == [user.access_token]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("rate_limit_user", "many/minute"),
        ("rate_limit_user", "0/minute"),
        ("rate_limit_address", "10 per fortnight"),
        ("rate_limit_storage", "memcached://localhost"),
        ("rate_limit_storage", "postgresql://localhost/db"),
    ],
)
def test_a_bad_setting_is_refused_with_its_name(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match=name.upper()):
        Settings(_env_file=None, **{name: value})


@pytest.mark.parametrize(
    "value",
    [
        "memory://",
        "redis://h:6379/0",
        "rediss://h",
        "redis+sentinel://h:26379/m",
        "redis+cluster://h",
    ],
)
def test_the_storages_limits_knows_are_accepted(value: str) -> None:
    assert Settings(_env_file=None, rate_limit_storage=value).rate_limit_storage == value
