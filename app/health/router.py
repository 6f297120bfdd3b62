import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.health.probe import ReadinessProbe

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


@router.get(
    "/health/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database is unreachable"}},
)
async def ready(request: Request) -> JSONResponse:
    """Readiness: the database answers, on the probe's own connection (never the request
    pool's: a pool held by slow requests is no reason to take the pod out of service)."""
    probe: ReadinessProbe = request.app.state.probe
    if await probe.ready():
        return JSONResponse({"status": "ready", "database": "ok"})
    return JSONResponse({"status": "unavailable", "database": "error"}, status_code=503)
