"""Demo data for RESET_DB=1: one user with a handful of todos to click through on /docs."""

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.accounts.security import PasswordHasher
from app.database import utcnow
from app.lists.models import TodoList
from app.lists.positions import FIRST, key_after
from app.todos.dates import day_instants
from app.todos.models import Priority, Todo

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
        ("Buy milk", Priority.normal, now + timedelta(days=1), False),
        ("Write the quarterly report", Priority.high, now + timedelta(days=3), False),
        ("Renew passport", Priority.high, now - timedelta(days=2), False),
        ("Water the plants", Priority.low, None, True),
        ("Read a book", Priority.low, None, False),
    ]
    for offset, (title, priority, due, done) in enumerate(samples):
        created = now - timedelta(minutes=len(samples) - offset)
        session.add(
            Todo(
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
