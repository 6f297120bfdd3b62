from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.accounts.dependencies import Claims
from app.changes import service, waiting
from app.changes.schemas import ChangePage, ChangeQuery
from app.database import SessionDep
from app.errors import error_responses

router = APIRouter(prefix="/changes", tags=["changes"], responses=error_responses(401, 503))

# The sync contract (API.md "Changes" and v1.4), where a client developer's tools show it.
SYNC_RULES = """What changed in the user's lists and todos since a token (none: everything).

How a client keeps a local copy:

1. **Start** without `since`: every current list and todo comes as a change. Call again with \
the answer's `next_token` while `has_more` is true; keep the last `next_token` and pass it as \
`since` next time (an empty answer's token too).
2. **Apply** each change in the order given. `type` says what `item` is (`list`: a ListRead, \
`todo`: a TodoRead): store `item` under (`type`, `id`), replacing what is held.
3. **Tombstones**: `deleted: true` (and `item: null`) means the object is gone: remove it \
(a deleted list's todos come as tombstones of their own). Tombstones are \
kept `CHANGES_RETENTION_DAYS` (30 by default).
4. **Order**: changes come in the order they were committed, but within one answer a list \
comes before the todos in it (and a todo before its subtasks) whenever both are in that \
answer. Per object, only its latest state since the token comes.
5. **An object may come twice** (in the same walk or the next): apply it again, the later \
state wins. Following the tokens never misses a change, also when writes commit out of order.
6. **410**: a `since` older than the retention; drop the token and start again without \
`since`. A `since` this server did not issue to this user is 422.
"""


@router.get("", response_model=ChangePage, responses=error_responses(410), description=SYNC_RULES)
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
