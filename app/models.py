"""Every model module, imported once so Alembic and the app see one complete metadata.

A new model module must be imported here. Alembic's autogenerate (`make migration`) compares
the database with Base.metadata through this module only (alembic/env.py): a model module
missing here gets no table in the migration. docs/adding-a-field.md walks through a change.
"""

from app.accounts.models import (
    AccountUsage,
    DeviceToken,
    Login,
    LoginFailure,
    RefreshToken,
    User,
)
from app.changes.models import Change, ChangeClock, ChangeWaiter
from app.client_ids import ClientId
from app.database import Base
from app.idempotency.models import IdempotencyKey
from app.lists.models import TodoList
from app.todos.models import Todo, TodoLabel

__all__ = [
    "AccountUsage",
    "Base",
    "Change",
    "ChangeClock",
    "ChangeWaiter",
    "ClientId",
    "DeviceToken",
    "IdempotencyKey",
    "Login",
    "LoginFailure",
    "RefreshToken",
    "Todo",
    "TodoLabel",
    "TodoList",
    "User",
]
