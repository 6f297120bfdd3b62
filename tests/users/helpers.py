"""Helpers the user tests share (and tests/auth, whose races include an admin's change).
Test modules import these from here, never from one another (tests/test_imports.py)."""

import uuid

from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from app.users.models import User
from tests.conftest import ApiUser, login, make_user


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
