"""Concurrent appends into one list do not collide (issue 24, bench scenario create_crowded).

Two creates computed from the same snapshot took the same max + 1: the second waited for the
first's uncommitted key, failed on (list_id, position) once it committed, and went again
under the list's lock (at half the spread rate in the bench). Each append now adds a fraction
of its own, so the second one lands beside the first with the same integer part, first time.
"""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text

from app.accounts.models import User
from app.database import utcnow
from app.lists.positions import INTEGER_DIGITS
from app.todos import fields, repository
from tests.conftest import ApiUser
from tests.lists.helpers import create_todo


def _waiting_for_a_lock(engine: Engine, holder_pid: int) -> bool:
    with engine.connect() as connection:
        query = "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> :holder"
        return bool(connection.execute(text(query), {"holder": holder_pid}).scalar())


def test_an_append_computed_beside_an_uncommitted_one_does_not_collide(
    client: TestClient,
    user: ApiUser,
    db_engine: Engine,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite has one writer at a time: appends never compute concurrently")
    last = create_todo(client, user)["position"]
    monkeypatch.setattr(repository, "append_suffix", lambda: "222")
    with db_engine.connect() as holder:
        # Another request's append, in a transaction left open: its key is in the index,
        # uncommitted. The service's own statement, with a fraction of its own.
        generation = holder.execute(
            select(User.credential_generation).where(User.id == uuid.UUID(user.id))
        ).scalar_one()
        now = utcnow()
        values: dict[str, Any] = dict.fromkeys(fields.INSERTED)
        values.update(id=uuid.uuid4(), title="first", completed=False, priority=1)
        values.update(created_at=now, updated_at=now, version=1)
        params = {f"new_{name}": value for name, value in values.items()}
        params.update(user_id=uuid.UUID(user.id), generation=generation, list_id=None)
        params.update(quota=1_000_000, append_suffix="111")
        first = holder.execute(repository._insert_statement(True), params).one()
        holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with ThreadPoolExecutor(max_workers=1) as pool:
            second = pool.submit(
                client.post, "/api/v1/todos", json={"title": "second"}, headers=user.headers
            )
            # The second create has read its snapshot and waits for the first's transaction
            # (its account_usage row, and before this change its key too).
            deadline = time.monotonic() + 30
            while not _waiting_for_a_lock(db_engine, holder_pid) and not second.done():
                assert time.monotonic() < deadline, "the second create never got going"
                time.sleep(0.02)
            holder.commit()
            response = second.result(timeout=30)
    assert response.status_code == 201, response.text
    whole = last[:INTEGER_DIGITS]
    # Both computed from the same last todo: the same integer part, after it, and apart.
    assert first.position[:INTEGER_DIGITS] > whole
    assert response.json()["position"] == first.position[:INTEGER_DIGITS] + "222"
