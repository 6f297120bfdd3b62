import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from app import caching, routing  # noqa: F401 - routing registers the item_id path convertor
from app.accounts.dependencies import Claims, SettingsDep
from app.database import SessionDep
from app.errors import error_responses
from app.etags import none_match
from app.openapi import ETAG
from app.todos import listing, service
from app.todos.schemas import (
    MoveTodo,
    TodoCreate,
    TodoListQuery,
    TodoPage,
    TodoRead,
    TodoStats,
    TodoUpdate,
)
from app.todos.service import VersionedTodo

router = APIRouter(prefix="/todos", tags=["todos"], responses=error_responses(401, 503))

_WITH_ETAG = {"description": "The todo, with its ETag", "headers": ETAG}
_PAGE = {"description": "A page, with its weak ETag", "headers": ETAG}
_IDEMPOTENCY_CONFLICT = {
    "description": "Validation error; also the same Idempotency-Key sent again with another body "
    "(loc: header, Idempotency-Key)",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
    },
}

IfMatch = Annotated[
    str | None,
    Header(description='An ETag from a previous response, quoted ("7"), or *; else 400'),
]
IfNoneMatch = Annotated[
    str | None,
    Header(description="ETags of a copy the client has (W/ and * accepted): 304 if it is current"),
]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=255,
        pattern=r"^[\x20-\x7e]+$",  # printable ASCII
        description="Retries with the same key and body return the first response",
    ),
]


def _with_etag(response: Response, todo: VersionedTodo) -> TodoRead:
    response.headers["ETag"] = todo.etag
    return todo.body


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TodoRead,
    responses={
        201: {
            "description": "Created (or, for a retry with the same Idempotency-Key and body, "
            "the first response again)",
            "headers": {
                "Location": {
                    "description": "The new todo's URL, /api/v1/todos/{id}",
                    "required": True,
                    "schema": {"type": "string"},
                },
                **ETAG,
            },
        },
        422: _IDEMPOTENCY_CONFLICT,
        **error_responses(403, 413),
    },
)
async def create_todo(
    data: TodoCreate,
    claims: Claims,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Create a todo (403 once the account holds MAX_TODOS_PER_USER)."""
    quota = settings.max_todos_per_user
    if idempotency_key is None:
        created = await service.create(session, claims, data, quota)
    else:
        created = await service.create_idempotent(session, claims, data, idempotency_key, quota)
    headers = {"Location": f"/api/v1/todos/{created.todo_id}", "ETag": created.etag}
    return Response(created.body, status.HTTP_201_CREATED, headers, "application/json")


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
    todo_id: uuid.UUID,
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
    todo_id: uuid.UUID,
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
    todo_id: uuid.UUID,
    data: TodoCreate,
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
    todo_id: uuid.UUID, claims: Claims, session: SessionDep, if_match: IfMatch = None
) -> None:
    """Delete a todo."""
    await service.delete_todo(session, claims, todo_id, if_match)


@router.post(
    "/{todo_id:item_id}/move",
    responses={200: _WITH_ETAG, **error_responses(400, 404, 409, 412, 413)},
)
async def move_todo(
    todo_id: uuid.UUID,
    data: MoveTodo,
    claims: Claims,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> TodoRead:
    """Place a todo right after another (after: null puts it first), in its list or another."""
    todo = await service.move_todo(session, claims, todo_id, data, if_match)
    return _with_etag(response, todo)
