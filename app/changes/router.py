from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.auth.dependencies import Claims
from app.changes import service
from app.changes.schemas import ChangePage, ChangeQuery
from app.database import SessionDep
from app.errors import error_responses

router = APIRouter(prefix="/changes", tags=["changes"], responses=error_responses(401, 503))


@router.get("", responses=error_responses(410))
async def list_changes(
    query: Annotated[ChangeQuery, Query()], claims: Claims, session: SessionDep, request: Request
) -> ChangePage:
    """What changed in the user's lists and todos since a token (none: everything)."""
    settings = request.app.state.settings
    return await service.feed(
        session,
        claims,
        request.app.state.change_tokens,
        query.since,
        query.limit,
        timedelta(days=settings.changes_retention_days),
    )
