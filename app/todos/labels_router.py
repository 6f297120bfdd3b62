from fastapi import APIRouter

from app.accounts.dependencies import Claims
from app.database import SessionDep
from app.errors import error_responses
from app.todos import listing
from app.todos.schemas import LabelList

router = APIRouter(prefix="/labels", tags=["labels"], responses=error_responses(401, 503))


@router.get("")
async def list_labels(claims: Claims, session: SessionDep) -> LabelList:
    """The current user's labels with their todo counts, by name ignoring case."""
    return await listing.labels(session, claims)
