import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

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


async def _ping(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True
    except Exception:  # any failure to reach the database means "not ready"
        return False


@router.get(
    "/health/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database is unreachable"}},
)
async def ready(request: Request) -> JSONResponse:
    """Readiness: the database answers."""
    if await _ping(request.app.state.engine):
        return JSONResponse({"status": "ready", "database": "ok"})
    return JSONResponse({"status": "unavailable", "database": "error"}, status_code=503)
