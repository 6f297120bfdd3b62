"""Creating lists and todos over HTTP, for the lists, order and feed tests."""

import uuid
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, select

from app.database import utcnow
from app.lists.positions import INTEGER_DIGITS, render
from app.todos.models import Todo
from tests.conftest import ApiUser


def create_list(client: TestClient, user: ApiUser, name: str = "Work") -> dict[str, Any]:
    response = client.post("/api/v1/lists", json={"name": name}, headers=user.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def create_todo(client: TestClient, user: ApiUser, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/v1/todos", json={"title": "t", **fields}, headers=user.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def insert_todos(engine: Engine, owner_id: str, list_id: str, count: int) -> None:
    """`count` todos at the end of a list, in one INSERT: large lists without the API."""
    with engine.begin() as connection:
        last = connection.scalar(
            select(func.max(Todo.position)).where(Todo.list_id == uuid.UUID(list_id))
        )
        start = 0 if last is None else int(last[:INTEGER_DIGITS])
        now = utcnow()
        rows = [
            {
                "id": uuid.uuid4(),
                "owner_id": uuid.UUID(owner_id),
                "list_id": uuid.UUID(list_id),
                "position": render(Decimal(start + i)),
                "title": f"bulk {i}",
                "completed": False,
                "priority": 1,
                "created_at": now,
                "updated_at": now,
                "version": 1,
            }
            for i in range(1, count + 1)
        ]
        connection.execute(insert(Todo), rows)
