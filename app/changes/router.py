from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.accounts.dependencies import Claims
from app.changes import service
from app.changes.schemas import ChangePage, ChangeQuery
from app.database import SessionDep
from app.errors import error_responses

router = APIRouter(prefix="/changes", tags=["changes"], responses=error_responses(401, 503))


@router.get("", response_model=ChangePage, responses=error_responses(410))
async def list_changes(
    query: Annotated[ChangeQuery, Query()], claims: Claims, session: SessionDep, request: Request
) -> Response:
    """What changed in the user's lists and todos since a token (none: everything)."""
    settings = request.app.state.settings
    page = await service.feed(
        session,
        claims,
        request.app.state.change_tokens,
        query.since,
        query.limit,
        timedelta(days=settings.changes_retention_days),
    )
    # The body is ChangePage's JSON, written with the models GET uses (service._documents):
    # response_model documents it, and the schemathesis run checks every answer against it.
    return Response(page, media_type="application/json")
