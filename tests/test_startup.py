"""Startup: RESET_DB rebuilds with demo data (never in production); a dead database is a 503."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from app.config import Settings
from app.demo import DEMO_EMAIL, DEMO_PASSWORD
from app.main import create_app
from app.users.models import User
from tests.conftest import login, make_user


def test_reset_db_rebuilds_with_demo_data(
    client: TestClient, settings: Settings, db_engine: Engine
) -> None:
    make_user(client, "before-reset@example.com")
    reset_app = create_app(settings.model_copy(update={"reset_db": True}))
    with TestClient(reset_app) as fresh:
        tokens = login(fresh, DEMO_EMAIL, DEMO_PASSWORD)
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        params = {"sort": "position"}
        todos = fresh.get("/api/v1/todos", params=params, headers=headers).json()["items"]
        assert len(todos) == 5
        (inbox,) = fresh.get("/api/v1/lists", headers=headers).json()["items"]
        assert {todo["list_id"] for todo in todos} == {inbox["id"]}
        assert len({todo["position"] for todo in todos}) == 5
    with db_engine.connect() as connection:
        emails = connection.scalars(select(User.email)).all()
    assert emails == [DEMO_EMAIL]


def test_reset_db_is_refused_in_production(
    client: TestClient, settings: Settings, db_engine: Engine
) -> None:
    make_user(client, "survivor@example.com")
    prod = settings.model_copy(update={"reset_db": True, "environment": "production"})
    with pytest.raises(RuntimeError, match="RESET_DB"), TestClient(create_app(prod)):
        pass
    with db_engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(User)) == 1


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://nobody@127.0.0.1:1/nothing",
        "sqlite:////nonexistent-directory/todo.db",
    ],
)
def test_unreachable_database_is_503_without_internals(settings: Settings, url: str) -> None:
    down = settings.model_copy(update={"database_url": url, "migrate_on_startup": False})
    with TestClient(create_app(down)) as client:
        response = client.post(
            "/api/v1/auth/register", json={"email": "x@example.com", "password": "password123"}
        )
        assert response.status_code == 503
        assert set(response.json()) == {"detail"}
        assert "Traceback" not in response.text
        assert "127.0.0.1" not in response.text
        assert client.get("/health").status_code == 200
        assert client.get("/health/ready").status_code == 503
