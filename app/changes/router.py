from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.accounts.dependencies import Claims
from app.changes import service, waiting
from app.changes.schemas import ChangePage, ChangeQuery
from app.database import SessionDep
from app.errors import error_responses

router = APIRouter(prefix="/changes", tags=["changes"], responses=error_responses(401, 503))


@router.get("", response_model=ChangePage, responses=error_responses(410))
async def list_changes(
    query: Annotated[ChangeQuery, Query()], claims: Claims, session: SessionDep, request: Request
) -> Response:
    """What changed in the user's lists and todos since a token (none: everything)."""
    state = request.app.state
    retention = timedelta(days=state.settings.changes_retention_days)
    if query.wait and query.since is not None:
        page = await waiting.feed(
            session,
            claims,
            state.change_tokens,
            state.change_waiters,
            query.since,
            query.limit,
            retention,
            query.wait,
        )
    else:
        page = await service.feed(
            session, claims, state.change_tokens, query.since, query.limit, retention
        )
    # The body is ChangePage's JSON, written with the models GET uses (service._documents):
    # response_model documents it, and the schemathesis run checks every answer against it.
    return Response(page, media_type="application/json")
