"""The session dependency commits before the response is sent: a failed commit is never a 2xx."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text

from app.todos.models import Todo
from tests.conftest import ApiUser

REJECT_AT_COMMIT = "rejected at commit"


@pytest.fixture
def commit_time_failure(client: TestClient, db_engine: Engine) -> Iterator[None]:
    """A deferred constraint trigger: the INSERT succeeds, only the COMMIT fails.

    Depends on `client`, whose startup migrates the database the trigger is created in."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("deferred constraint triggers are a PostgreSQL feature")
    with db_engine.begin() as connection:
        connection.execute(
            text(
                "CREATE FUNCTION reject_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN RAISE EXCEPTION 'rejected' USING ERRCODE = 'check_violation'; END $$"
            )
        )
        connection.execute(
            text(
                "CREATE CONSTRAINT TRIGGER reject_at_commit AFTER INSERT ON todos "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                f"WHEN (NEW.title = '{REJECT_AT_COMMIT}') EXECUTE FUNCTION reject_at_commit()"
            )
        )
    try:
        yield
    finally:
        with db_engine.begin() as connection:
            connection.execute(text("DROP TRIGGER reject_at_commit ON todos"))
            connection.execute(text("DROP FUNCTION reject_at_commit()"))


@pytest.mark.usefixtures("commit_time_failure")
def test_failed_commit_is_an_error_response(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    response = client.post("/api/v1/todos", json={"title": REJECT_AT_COMMIT}, headers=user.headers)
    assert response.status_code == 409
    assert "rejected" not in response.text  # the database's message stays server-side
    with db_engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Todo)) == 0
    # The same request without the trigger condition commits fine.
    assert (
        client.post("/api/v1/todos", json={"title": "ok"}, headers=user.headers).status_code == 201
    )
