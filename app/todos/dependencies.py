import uuid
from typing import Annotated

from fastapi import Depends, Request

from app.auth.dependencies import CurrentUser
from app.database import SessionDep
from app.todos import service
from app.todos.models import Todo

_WRITES = frozenset({"PATCH", "PUT", "DELETE"})


def get_owned_todo(
    todo_id: uuid.UUID, user: CurrentUser, session: SessionDep, request: Request
) -> Todo:
    """The one place ownership is enforced: someone else's todo is a 404, like a missing one."""
    return service.get_owned(session, user.id, todo_id, for_update=request.method in _WRITES)


OwnedTodo = Annotated[Todo, Depends(get_owned_todo)]
