import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from app import caching, routing  # noqa: F401 - routing registers the item_id path convertor
from app.accounts.dependencies import Claims, SettingsDep
from app.database import SessionDep
from app.errors import error_responses
from app.etags import none_match
from app.lists import service
from app.lists.schemas import ListCreate, ListListQuery, ListPage, ListRead, ListUpdate, MoveList
from app.lists.service import VersionedList
from app.openapi import ETAG

router = APIRouter(prefix="/lists", tags=["lists"], responses=error_responses(401, 503))
_WITH_ETAG = {"description": "The list, with its ETag", "headers": ETAG}
_LOCATION = {
    "description": "The new list's URL, /api/v1/lists/{id}",
    "required": True,
    "schema": {"type": "string"},
}

IfMatch = Annotated[
    str | None,
    Header(description='An ETag from a previous response, quoted ("7"), or *; else 400'),
]
IfNoneMatch = Annotated[
    str | None,
    Header(description="ETags of a copy the client has (W/ and * accepted): 304 if it is current"),
]
_PAGE = {"description": "A page, with its weak ETag", "headers": ETAG}


def _with_etag(response: Response, todo_list: VersionedList) -> ListRead:
    response.headers["ETag"] = todo_list.etag
    return todo_list.body


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"description": "Created", "headers": {"Location": _LOCATION, **ETAG}},
        **error_responses(403, 413),
    },
)
async def create_list(
    data: ListCreate,
    claims: Claims,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> ListRead:
    """Create a list, at the end of the user's lists (403 past MAX_LISTS_PER_USER)."""
    created = await service.create(session, claims, data, settings.max_lists_per_user)
    response.headers["Location"] = f"/api/v1/lists/{created.body.id}"
    return _with_etag(response, created)


@router.get(
    "",
    response_model=ListPage,
    responses={200: _PAGE, 304: {**caching.NOT_MODIFIED, "headers": ETAG}},
)
async def list_lists(
    query: Annotated[ListListQuery, Query()],
    claims: Claims,
    session: SessionDep,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """The user's lists in their order, a page at a time; 304 if If-None-Match holds its ETag."""
    page = await service.list_page(session, claims, query)
    return caching.page_response(page, if_none_match)


@router.get(
    "/{list_id:item_id}",
    response_model=ListRead,
    responses={
        200: _WITH_ETAG,
        304: {**caching.NOT_MODIFIED, "headers": ETAG},
        **error_responses(404),
    },
)
async def read_list(
    list_id: uuid.UUID,
    claims: Claims,
    session: SessionDep,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> object:
    """One list; with If-None-Match holding its current ETag, 304 and no body."""
    todo_list = await service.get_owned(session, claims, list_id)
    if none_match(if_none_match, todo_list.etag):
        return caching.not_modified(todo_list.etag)
    caching.revalidate(response, todo_list.etag)
    return todo_list.body


@router.patch(
    "/{list_id:item_id}", responses={200: _WITH_ETAG, **error_responses(400, 404, 412, 413)}
)
async def rename_list(
    list_id: uuid.UUID,
    data: ListUpdate,
    claims: Claims,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> ListRead:
    """Rename a list."""
    return _with_etag(response, await service.rename(session, claims, list_id, data, if_match))


@router.delete(
    "/{list_id:item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,  # no body, so no content-type
    responses=error_responses(400, 404, 409, 412),
)
async def delete_list(
    list_id: uuid.UUID, claims: Claims, session: SessionDep, if_match: IfMatch = None
) -> None:
    """Delete a list and its todos; the default list cannot be deleted."""
    await service.delete_list(session, claims, list_id, if_match)


@router.post(
    "/{list_id:item_id}/move",
    responses={200: _WITH_ETAG, **error_responses(400, 404, 409, 412, 413)},
)
async def move_list(
    list_id: uuid.UUID,
    data: MoveList,
    claims: Claims,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> ListRead:
    """Place a list right after another (after: null puts it first)."""
    return _with_etag(response, await service.move(session, claims, list_id, data, if_match))
