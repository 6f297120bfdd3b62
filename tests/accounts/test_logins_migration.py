"""The logins migration (a7e3c91d5b20) and a rollout: families that exist before it get their
row; a family a previous-release replica starts afterwards (tokens, no row) gets one the first
time this release meets it, and then ends like any other."""

import hashlib
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from alembic import command
from app.accounts.models import Login, RefreshToken, User
from app.config import Settings
from app.database import utcnow
from app.engines import create_migration_engine
from app.main import create_app
from app.migrations import alembic_config
from tests.conftest import TEST_SECRET

BEFORE = "4f7a1c9e2b6d"  # the revision before logins
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"


@pytest.fixture
def migration_settings(empty_database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        environment="test",
        database_url=empty_database_url,
        secret_key=TEST_SECRET,
        bcrypt_rounds=4,
        migration_lock_path=tmp_path / "migrate.lock",
    )


@pytest.fixture
def engine(migration_settings: Settings) -> Iterator[Engine]:
    created = create_migration_engine(migration_settings)
    yield created
    created.dispose()


def _migrate(engine: Engine, target: str) -> None:
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), target)


def _add_tokens(engine: Engine, user_id: uuid.UUID, family: uuid.UUID, **states: Any) -> None:
    """Tokens as a release without logins writes them: raw value -> column values."""
    now = utcnow()
    with engine.begin() as connection:
        for raw, values in states.items():
            connection.execute(
                RefreshToken.__table__.insert().values(
                    id=uuid.uuid4(),
                    user_id=user_id,
                    family_id=family,
                    token_hash=hashlib.sha256(raw.encode()).hexdigest(),
                    created_at=values.pop("created_at", now),
                    expires_at=now + timedelta(days=14),
                    credential_generation=0,
                    **values,
                )
            )


def _login(engine: Engine, family: uuid.UUID) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            select(Login.user_id, Login.created_at, Login.expires_at, Login.revoked_at).where(
                Login.id == family
            )
        ).first()


def test_existing_families_get_their_login_and_new_ones_theirs_on_first_use(
    engine: Engine, migration_settings: Settings
) -> None:
    _migrate(engine, BEFORE)
    user_id, live, ended = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            User.__table__.insert().values(
                id=user_id,
                email="old@example.com",
                hashed_password="$2b$04$" + "x" * 53,
                is_active=True,
                is_superuser=False,
                created_at=now,
                updated_at=now,
                credential_generation=0,
            )
        )
    started = now - timedelta(days=3)
    _add_tokens(
        engine,
        user_id,
        live,
        first={"created_at": started, "rotated_at": now - timedelta(days=1)},
        second={"created_at": now - timedelta(days=1)},
    )
    _add_tokens(engine, user_id, ended, gone={"revoked_at": now})

    _migrate(engine, "head")

    row = _login(engine, live)
    assert (row.user_id, row.revoked_at) == (user_id, None)
    assert abs(row.created_at - started) < timedelta(milliseconds=1)
    assert abs(row.expires_at - (started + timedelta(days=90))) < timedelta(milliseconds=1)
    assert _login(engine, ended).revoked_at is not None

    legacy = uuid.uuid4()  # started by a previous-release replica, after the migration
    _add_tokens(engine, user_id, legacy, newest={})
    assert _login(engine, legacy) is None
    with TestClient(create_app(migration_settings)) as client:
        assert client.post(REFRESH, json={"refresh_token": "gone"}).status_code == 401
        pair = client.post(REFRESH, json={"refresh_token": "second"})
        assert pair.status_code == 200, pair.text
        legacy_pair = client.post(REFRESH, json={"refresh_token": "newest"})
        assert legacy_pair.status_code == 200, legacy_pair.text
        assert _login(engine, legacy).revoked_at is None
        body = {"refresh_token": legacy_pair.json()["refresh_token"]}
        assert client.post(LOGOUT, json=body).status_code == 204
        assert _login(engine, legacy).revoked_at is not None
        assert client.post(REFRESH, json=body).status_code == 401
        assert client.post(REFRESH, json={"refresh_token": "newest"}).status_code == 401
        # The other login is untouched.
        live_body = {"refresh_token": pair.json()["refresh_token"]}
        assert client.post(REFRESH, json=live_body).status_code == 200
