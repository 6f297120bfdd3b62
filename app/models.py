"""Every model module, imported once so Alembic and the app see one complete metadata."""

from app.auth.models import LoginFailure, RefreshToken
from app.database import Base
from app.todos.models import IdempotencyKey, Todo
from app.users.models import User

__all__ = ["Base", "IdempotencyKey", "LoginFailure", "RefreshToken", "Todo", "User"]
