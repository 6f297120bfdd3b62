"""Helpers the account tests share: the throttle's (logins, and the password checks that are
throttled like them) and the users' (an admin, made behind the API's back). Test modules
import these from here, never from one another (tests/test_imports.py)."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import Engine, update

from app.accounts.models import User
from app.config import Settings
from app.main import create_app
from tests.conftest import ApiUser, login, make_user

TOKEN = "/api/v1/auth/token"
WINDOW = 900  # LOGIN_WINDOW_SECONDS's default
ATTACKER = ("203.0.113.7", 40000)
OWNER = ("198.51.100.9", 40001)
WRONG = "not-the-password"


def assert_throttled(response: Response, window: int = WINDOW) -> int:
    """The contract's 429: {"detail": ...} and Retry-After in whole seconds; returns those."""
    assert response.status_code == 429, response.text
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str)
    assert body["detail"]
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= window
    return int(retry_after)


@contextmanager
def from_address(settings: Settings, address: tuple[str, int]) -> Iterator[TestClient]:
    """A client at `address`: an app of its own per client, as one app's lifespan must not
    run on two event loops."""
    with TestClient(create_app(settings), client=address) as client:
        yield client


def make_superuser(client: TestClient, db_engine: Engine) -> ApiUser:
    """A user made superuser behind the API's back (the API has no way to), logged in again."""
    admin = make_user(client)
    with db_engine.begin() as connection:
        connection.execute(
            update(User).where(User.id == uuid.UUID(admin.id)).values(is_superuser=True)
        )
    tokens = login(client, admin.email)
    admin.access_token = str(tokens["access_token"])
    admin.refresh_token = str(tokens["refresh_token"])
    return admin
