"""Every model module, imported once so Alembic and the app see one complete metadata."""

from app.auth.models import LoginFailure, RefreshToken
from app.changes.models import Change, ChangeClock
from app.database import Base
from app.lists.models import TodoList
from app.todos.models import IdempotencyKey, Todo
from app.users.models import User

__all__ = [
    "Base",
    "Change",
    "ChangeClock",
    "IdempotencyKey",
    "LoginFailure",
    "RefreshToken",
    "Todo",
    "TodoList",
    "User",
]
