import uuid
from typing import Annotated

from fastapi import Depends, Request

from app.auth.dependencies import Claims
from app.database import Db
from app.todos import service
from app.todos.service import VersionedTodo

_WRITES = frozenset({"PATCH", "PUT", "DELETE"})


async def get_owned_todo(
    todo_id: uuid.UUID, claims: Claims, db: Db, request: Request
) -> VersionedTodo:
    """The one place ownership is enforced: someone else's todo is a 404, like a missing one."""
    return await service.get_owned(db, claims, todo_id, for_update=request.method in _WRITES)


OwnedTodo = Annotated[VersionedTodo, Depends(get_owned_todo)]
