from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from app.auth.dependencies import CurrentUser
from app.database import SessionDep
from app.errors import error_responses
from app.todos import service
from app.todos.dependencies import OwnedTodo
from app.todos.models import Todo
from app.todos.schemas import TodoCreate, TodoListQuery, TodoPage, TodoRead, TodoStats, TodoUpdate

router = APIRouter(prefix="/todos", tags=["todos"], responses=error_responses(401, 413, 503))

IfMatch = Annotated[str | None, Header(description="An ETag from a previous response")]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=255,
        pattern=r"^[\x20-\x7e]+$",  # printable ASCII
        description="Retries with the same key and body return the first response",
    ),
]


def _with_etag(response: Response, todo: Todo) -> TodoRead:
    response.headers["ETag"] = service.etag(todo)
    return TodoRead.model_validate(todo)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TodoRead,
    responses={201: {"headers": {"Location": {"schema": {"type": "string"}}}}},
)
def create_todo(
    data: TodoCreate,
    user: CurrentUser,
    session: SessionDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Create a todo."""
    if idempotency_key is None:
        created = service.create(session, user.id, data)
    else:
        created = service.create_idempotent(session, user.id, data, idempotency_key)
    headers = {"Location": f"/api/v1/todos/{created.todo_id}", "ETag": created.etag}
    return Response(created.body, status.HTTP_201_CREATED, headers, "application/json")


@router.get("")
def list_todos(
    query: Annotated[TodoListQuery, Query()], user: CurrentUser, session: SessionDep
) -> TodoPage:
    """List the current user's todos, a page at a time."""
    return service.list_page(session, user.id, query)


@router.get("/stats")
def todo_stats(user: CurrentUser, session: SessionDep) -> TodoStats:
    """Counts of the current user's todos."""
    return service.stats(session, user.id)


@router.get("/{todo_id}", responses=error_responses(404))
def read_todo(todo: OwnedTodo, response: Response) -> TodoRead:
    """One todo."""
    return _with_etag(response, todo)


@router.patch("/{todo_id}", responses=error_responses(404, 412))
def update_todo(
    data: TodoUpdate,
    todo: OwnedTodo,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> TodoRead:
    """Change some fields of a todo."""
    return _with_etag(response, service.update(session, todo, data, if_match))


@router.put("/{todo_id}", responses=error_responses(404, 412))
def replace_todo(
    data: TodoCreate,
    todo: OwnedTodo,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> TodoRead:
    """Replace a todo; omitted optional fields reset to their defaults."""
    return _with_etag(response, service.replace(session, todo, data, if_match))


@router.delete(
    "/{todo_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, 412)
)
def delete_todo(todo: OwnedTodo, session: SessionDep, if_match: IfMatch = None) -> None:
    """Delete a todo."""
    service.delete(session, todo, if_match)
