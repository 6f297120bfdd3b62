"""Demo data for RESET_DB=1: one user with a handful of todos to click through on /docs."""

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.accounts.security import PasswordHasher
from app.database import utcnow
from app.lists.models import TodoList
from app.lists.positions import FIRST, key_after
from app.todos.dates import day_instants
from app.todos.models import Priority, Todo, TodoLabel
from app.todos.schemas import label_key

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"  # noqa: S105 - documented demo credentials, development only


async def load(session: AsyncSession, hasher: PasswordHasher) -> None:
    now = utcnow()
    hashed = await hasher.hash_async(DEMO_PASSWORD)
    user = User(email=DEMO_EMAIL, hashed_password=hashed, full_name="Demo User")
    session.add(user)
    await session.flush()
    # The database gave the user a default list (a trigger on users); the todos go in it.
    inbox = (
        await session.execute(
            select(TodoList.id).where(TodoList.owner_id == user.id, TodoList.is_default)
        )
    ).scalar_one()
    position = FIRST
    samples = [
        ("Buy milk", Priority.normal, now + timedelta(days=1), False, ["Errands"]),
        ("Write the quarterly report", Priority.high, now + timedelta(days=3), False, ["Work"]),
        ("Renew passport", Priority.high, now - timedelta(days=2), False, ["Errands", "urgent"]),
        ("Water the plants", Priority.low, None, True, ["Home"]),
        ("Read a book", Priority.low, None, False, []),
    ]
    for offset, (title, priority, due, done, labels) in enumerate(samples):
        created = now - timedelta(minutes=len(samples) - offset)
        todo_id = uuid.uuid4()
        # The labels twice, as app.todos.labels_repository writes them (ADR 0401).
        session.add_all(
            TodoLabel(todo_id=todo_id, name_key=label_key(name), user_id=user.id, name=name)
            for name in labels
        )
        session.add(
            Todo(
                id=todo_id,
                labels=labels,
                owner_id=user.id,
                title=title,
                priority=priority,
                due_date=due,
                completed=done,
                completed_at=created if done else None,
                created_at=created,
                updated_at=created,
                list_id=inbox,
                position=position,
            )
        )
        position = key_after(position)
    # An all-day todo, due when its day starts in Berlin (app.todos.dates).
    day, zone = (now + timedelta(days=2)).date(), "Europe/Berlin"
    session.add(
        Todo(
            owner_id=user.id,
            title="Call the bank",
            priority=Priority.normal,
            due_day=day,
            time_zone=zone,
            **day_instants(day, zone),
            created_at=now,
            updated_at=now,
            list_id=inbox,
            position=position,
        )
    )
    position = key_after(position)
    # Subtasks of the report, so that parent_id shows on /docs (flushed after their parent).
    await session.flush()
    report = (
        await session.execute(
            select(Todo.id).where(Todo.owner_id == user.id, Todo.title == samples[1][0])
        )
    ).scalar_one()
    for offset, title in enumerate(("Collect the numbers", "Draft the summary")):
        created = now - timedelta(seconds=30 - offset)
        session.add(
            Todo(
                owner_id=user.id,
                title=title,
                created_at=created,
                updated_at=created,
                list_id=inbox,
                position=position,
                parent_id=report,
            )
        )
        position = key_after(position)
