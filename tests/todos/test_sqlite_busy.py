"""SQLite's busy timeout plays LOCK_TIMEOUT_MS's part (x10: every writer queues for the one
write lock): a write waiting past it is the same 503 with Retry-After, never a 500."""

import time
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from app.config import Settings
from app.lists.models import TodoList
from tests.conftest import ApiUser
from tests.lists.helpers import create_todo


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"lock_timeout_ms": 200})


def test_a_write_waiting_past_the_busy_timeout_is_503(
    request: pytest.FixtureRequest, backend: str, db_engine: Engine
) -> None:
    if backend != "sqlite":
        pytest.skip("PostgreSQL's lock_timeout: tests/todos/test_order.py")
    client: TestClient = request.getfixturevalue("client")
    user: ApiUser = request.getfixturevalue("user")
    todo = create_todo(client, user)
    with db_engine.connect() as holder:
        holder.execute(
            update(TodoList).where(TodoList.id == uuid.UUID(todo["list_id"])).values(name="x")
        )  # the write lock is held until the block ends
        started = time.monotonic()
        response = client.post(
            f"/api/v1/todos/{todo['id']}/move", json={"after": None}, headers=user.headers
        )
        waited = time.monotonic() - started
        holder.rollback()
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert 1.8 < waited < 10, waited  # 10 x 200 ms, not the 30 s it was
    moved = client.post(
        f"/api/v1/todos/{todo['id']}/move", json={"after": None}, headers=user.headers
    )
    assert moved.status_code == 200
