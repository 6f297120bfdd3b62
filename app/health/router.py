import contextlib
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.database import SessionDep

router = APIRouter(tags=["meta"])


class Health(BaseModel):
    status: str
    version: str
    uptime_seconds: float


class Readiness(BaseModel):
    status: str
    database: str


@router.get("/health")
async def health(request: Request) -> Health:
    """Liveness: the process answers. Never touches the database."""
    state = request.app.state
    uptime = round(time.monotonic() - state.started_at, 3)
    return Health(status="healthy", version=state.settings.version, uptime_seconds=uptime)


_PING = text("SELECT 1")


async def _ping(session: AsyncSession) -> bool:
    try:
        await session.execute(_PING)
    except Exception:  # any failure to reach the database means "not ready"
        with contextlib.suppress(Exception):
            await session.rollback()  # so that the dependency's commit has nothing to do
        return False
    return True


@router.get(
    "/health/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database is unreachable"}},
)
async def ready(session: SessionDep) -> JSONResponse:
    """Readiness: the database answers."""
    if await _ping(session):
        return JSONResponse({"status": "ready", "database": "ok"})
    return JSONResponse({"status": "unavailable", "database": "error"}, status_code=503)
