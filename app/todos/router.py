import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response, status

from app import caching, routing  # noqa: F401 - routing registers the item_id path convertor
from app.accounts.dependencies import Claims, SettingsDep
from app.database import SessionDep
from app.errors import error_responses
from app.etags import none_match
from app.idempotency.headers import KEY_CONFLICT, IdempotencyKeyHeader, keyed
from app.idempotency.service import Stored
from app.openapi import ETAG
from app.todos import creating, listing, service
from app.todos.schemas import (
    MoveTodo,
    TodoCreate,
    TodoListQuery,
    TodoPage,
    TodoRead,
    TodoReplace,
    TodoStats,
    TodoUpdate,
)
from app.todos.service import VersionedTodo

router = APIRouter(prefix="/todos", tags=["todos"], responses=error_responses(401, 503))

_WITH_ETAG = {"description": "The todo, with its ETag", "headers": ETAG}
_PAGE = {"description": "A page, with its weak ETag", "headers": ETAG}
IfMatch = Annotated[
    str | None,
    Header(
        description='The ETag the client last read (`"3"`; several, comma-separated; `*`): '
        "the write happens only if the todo is still such a version (strong comparison), "
        "else 412 and nothing changes; not an entity-tag (unquoted `7`): 400. Absent: unconditional"
    ),
]
IfNoneMatch = Annotated[
    str | None,
    Header(description="ETags of a copy the client has (W/ and * accepted): 304 if it is current"),
]
TodoId = Annotated[uuid.UUID, Path(description="The todo's id (not a UUID: 422)")]


def _with_etag(response: Response, todo: VersionedTodo) -> TodoRead:
    response.headers["ETag"] = todo.etag
    return todo.body


def _json(stored: Stored, status_code: int, headers: dict[str, str]) -> Response:
    return Response(stored.body, status_code, {**headers, "ETag": stored.etag}, "application/json")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TodoRead,
    responses={
        201: {
            "description": "Created (or, for a retry with the same Idempotency-Key and body, "
            "the first response again; for the same id and body, the todo as it is now)",
            "headers": {
                "Location": {
                    "description": "The new todo's URL, /api/v1/todos/{id}",
                    "required": True,
                    "schema": {"type": "string"},
                },
                **ETAG,
            },
        },
        422: KEY_CONFLICT,
        **error_responses(403, 409, 413),
    },
)
async def create_todo(
    data: TodoCreate,
    claims: Claims,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Create a todo (403 once the account holds MAX_TODOS_PER_USER; 409: its id is taken)."""
    quota = settings.max_todos_per_user
    todo = await creating.create(session, claims, data, quota, keyed(request, idempotency_key))
    location = {"Location": f"/api/v1/todos/{todo.object_id}"}
    return _json(todo, status.HTTP_201_CREATED, location)


@router.get(
    "",
    response_model=TodoPage,
    responses={200: _PAGE, 304: {**caching.NOT_MODIFIED, "headers": ETAG}},
)
async def list_todos(
    query: Annotated[TodoListQuery, Query()],
    claims: Claims,
    session: SessionDep,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """List the current user's todos, a page at a time; 304 if If-None-Match holds its ETag."""
    page = await listing.list_page(session, claims, query)
    return caching.page_response(page, if_none_match)


@router.get("/stats")
async def todo_stats(claims: Claims, session: SessionDep) -> TodoStats:
    """Counts of the current user's todos."""
    return await listing.stats(session, claims)


@router.get(
    "/{todo_id:item_id}",
    response_model=TodoRead,
    responses={
        200: _WITH_ETAG,
        304: {**caching.NOT_MODIFIED, "headers": ETAG},
        **error_responses(404),
    },
)
async def read_todo(
    todo_id: TodoId,
    claims: Claims,
    session: SessionDep,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> object:
    """One todo; with If-None-Match holding its current ETag, 304 and no body."""
    todo = await service.get_owned(session, claims, todo_id)
    if none_match(if_none_match, todo.etag):
        return caching.not_modified(todo.etag)
    caching.revalidate(response, todo.etag)
    return todo.body


@router.patch(
    "/{todo_id:item_id}", responses={200: _WITH_ETAG, **error_responses(400, 404, 412, 413)}
)
async def update_todo(
    todo_id: TodoId,
    data: TodoUpdate,
    claims: Claims,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> TodoRead:
    """Change some fields of a todo."""
    todo = await service.update_todo(session, claims, todo_id, data, if_match)
    return _with_etag(response, todo)


@router.put(
    "/{todo_id:item_id}", responses={200: _WITH_ETAG, **error_responses(400, 404, 412, 413)}
)
async def replace_todo(
    todo_id: TodoId,
    data: TodoReplace,
    claims: Claims,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> TodoRead:
    """Replace a todo; omitted optional fields reset to their defaults."""
    todo = await service.replace_todo(session, claims, todo_id, data, if_match)
    return _with_etag(response, todo)


@router.delete(
    "/{todo_id:item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,  # no body, so no content-type
    responses=error_responses(400, 404, 412),
)
async def delete_todo(
    todo_id: TodoId, claims: Claims, session: SessionDep, if_match: IfMatch = None
) -> None:
    """Delete a todo."""
    await service.delete_todo(session, claims, todo_id, if_match)


@router.post(
    "/{todo_id:item_id}/move",
    response_model=TodoRead,
    responses={200: _WITH_ETAG, 422: KEY_CONFLICT, **error_responses(400, 404, 409, 412, 413)},
)
async def move_todo(
    todo_id: TodoId,
    data: MoveTodo,
    claims: Claims,
    session: SessionDep,
    request: Request,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Place a todo right after another (after: null puts it first), in its list or another."""
    key = keyed(request, idempotency_key)
    return _json(await service.move_todo(session, claims, todo_id, data, if_match, key), 200, {})
