"""The application: `app` (what uvicorn and gunicorn serve as app.main:app) and its factory.

create_app(): routers, middleware, handlers, all wired as it builds the app; its lifespan:
settings (if not given) → engine → migrations. `app = create_app()` below reads no
configuration when this module is imported (tests import it with environments of their own,
and gunicorn's master imports it before RESET_DB is cleared for the workers): without
settings, the app reads them as the server starts it, and what they shape (CORS, body limits,
whether /metrics is served here) takes that shape then (app.wiring).
"""

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route
from starlette.types import ASGIApp

from app import demo, migrations, openapi, tracing
from app.accounts import users
from app.accounts.auth_router import router as auth_router
from app.accounts.security import PasswordHasher, TokenCodec
from app.accounts.users_router import router as users_router
from app.changes.router import router as changes_router
from app.changes.tokens import ChangeTokens
from app.config import Settings, get_settings
from app.database import (
    create_db_engine,
    create_migration_engine,
    create_sessionmaker,
    transaction,
)
from app.errors import error_responses, register_error_handlers
from app.health.probe import ReadinessProbe, create_probe_engine
from app.health.router import router as health_router
from app.lists.router import router as lists_router
from app.logs import configure_logging
from app.meta import ApiInfo, ServiceInfo
from app.metrics import render as render_metrics
from app.middleware import PlainStartupRefusal, RequestContextMiddleware
from app.purge import purge_periodically
from app.ratelimit.limiter import MEMORY_WARNING, Limiter
from app.ratelimit.middleware import RateLimitMiddleware
from app.routing import MethodTable
from app.todos.labels_router import router as labels_router
from app.todos.router import router as todos_router
from app.wiring import SettingsMiddleware, SwitchableRoute

API_PREFIX = "/api/v1"
# The docs' sections, in the order a new user needs them.
OPENAPI_TAGS = [
    {"name": "auth", "description": "Sign up, log in (also through **Authorize**), tokens."},
    {"name": "users", "description": "Your account; superusers manage everyone's."},
    {"name": "todos", "description": "Your todos."},
    {"name": "lists", "description": "Your lists of todos, in your order."},
    {"name": "labels", "description": "The labels on your todos."},
    {"name": "changes", "description": "What changed in your lists and todos since a token."},
    {"name": "meta", "description": "Health, readiness, metrics, service information."},
]
DOCS_URL = "/docs"
REDOC_URL = "/redoc"


def reset_database_once() -> None:
    """RESET_DB for a multi-process server: rebuild with demo data now, in this process, and
    clear the flag for the workers it is about to start (gunicorn's master calls this)."""
    settings = get_settings()
    if not settings.reset_db:
        return
    asyncio.run(_reset_once(settings))
    os.environ["RESET_DB"] = "0"
    get_settings.cache_clear()


async def _reset_once(settings: Settings) -> None:
    engine = create_db_engine(settings)
    hasher = PasswordHasher(settings.bcrypt_rounds)
    try:
        await _reset_with_demo_data(settings, create_sessionmaker(engine), hasher)
    finally:
        await engine.dispose()
        hasher.close()


async def _reset_with_demo_data(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], hasher: PasswordHasher
) -> None:
    # Blocking work (file lock, synchronous driver, no request statement timeout): off the
    # event loop, on a connection of its own.
    await run_in_threadpool(_prepare_schema, settings, migrations.reset_database)
    async with sessionmaker() as session, transaction(session):
        await demo.load(session, hasher)


def _prepare_schema(settings: Settings, work: Callable[[Settings, Engine], object]) -> None:
    engine = create_migration_engine(settings.for_schema_work())
    try:
        work(settings, engine)
    finally:
        engine.dispose()


async def _prepare_database(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    sessionmaker = app.state.sessionmaker
    if settings.schema_on_startup == "reset":
        await _reset_with_demo_data(settings, sessionmaker, app.state.hasher)
    elif settings.schema_on_startup == "migrate":
        await run_in_threadpool(_prepare_schema, settings, migrations.upgrade_to_head)
    if settings.first_superuser_email and settings.first_superuser_password:
        async with sessionmaker() as session:
            await users.ensure_superuser(
                session,
                app.state.hasher,
                settings.first_superuser_email,
                settings.first_superuser_password.get_secret_value(),
            )
            await session.commit()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    if not hasattr(app.state, "settings"):  # create_app() without settings: read them now
        _configure(app, get_settings())
    settings: Settings = app.state.settings
    # gunicorn applies the same configuration itself (gunicorn_conf.py), and under pytest the
    # root logger belongs to log capture: configure only a process nobody configured yet.
    if not logging.getLogger().handlers:
        configure_logging(settings.log_level, settings.log_format)
    app.state.started_at = time.monotonic()
    engine = app.state.engine = create_db_engine(settings)
    app.state.sessionmaker = create_sessionmaker(engine)
    app.state.probe = ReadinessProbe(create_probe_engine(settings))
    # Building these costs a bcrypt hash (the dummy one) and may create the dev key file.
    app.state.hasher = await run_in_threadpool(
        PasswordHasher, settings.bcrypt_rounds, settings.hash_queue_limit
    )
    app.state.token_codec = await run_in_threadpool(TokenCodec, settings)
    app.state.change_tokens = await run_in_threadpool(ChangeTokens, settings)
    app.state.limiter = _limiter(settings)
    # OTEL_* only, nothing at all unless an endpoint is set (app/tracing.py). Here, in the
    # serving process: under gunicorn, after the fork. Ended (flushed) after the engine.
    spans = contextlib.ExitStack()
    try:
        app.state.hasher.tracing = spans.enter_context(tracing.traced(app, engine))
        await _prepare_database(app)
        # Everything built so far lives as long as the process: exempt it from the cyclic
        # garbage collector, whose full passes would otherwise walk it all again and again
        # (a pause of tens of milliseconds each, paid by whichever request is in flight).
        gc.collect()
        gc.freeze()
        purge = asyncio.create_task(purge_periodically(app.state.sessionmaker, settings))
        try:
            yield
        finally:
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
    finally:
        await engine.dispose()
        await app.state.probe.close()
        app.state.hasher.close()
        if app.state.limiter is not None:
            await app.state.limiter.close()
        spans.close()


def _limiter(settings: Settings) -> Limiter | None:
    if not settings.rate_limit_enabled:
        return None
    limiter = Limiter(settings)
    if limiter.in_memory:
        logging.getLogger("app.ratelimit").warning(MEMORY_WARNING)
    return limiter


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application, wired now, configured from `settings` now (tests pass their own), or
    without them from get_settings() when the server starts it: in its lifespan, so that a bad
    setting is a failed startup the server reports and exits on, never an error at import."""
    # FastAPIOffline serves Swagger UI and ReDoc with their scripts, styles and icon from the
    # package itself: the docs work with no internet access.
    app = FastAPIOffline(
        docs_url=DOCS_URL,
        redoc_url=REDOC_URL,
        lifespan=lifespan,
        # The contract's paths answer exactly as written; /todos/ is a 404, not a redirect.
        redirect_slashes=False,
        openapi_tags=OPENAPI_TAGS,
        generate_unique_id_function=openapi.operation_id,
        # Relative: requests from the docs and from generated clients go where the schema is.
        servers=[{"url": "/", "description": "This server"}],
        contact={"name": "todo-api maintainers"},
        license_info={"name": "MIT", "identifier": "MIT"},
    )
    openapi.install(app)
    register_error_handlers(app)
    _add_routes(app)
    # Inside CORS (a browser may read a 429 and its fields; preflights are not counted), and
    # inside the request context (a 429 has its request id and no-store like any error).
    app.add_middleware(RateLimitMiddleware, prefix=API_PREFIX)
    app.add_middleware(PlainStartupRefusal)
    # Outermost: CORS and the request context, as the settings (known now or at startup) say.
    app.add_middleware(SettingsMiddleware, build=_settings_middleware)
    if settings is not None:
        _configure(app, settings)
    return app


def _configure(app: FastAPI, settings: Settings) -> None:
    """What the settings decide that is not wiring: title, version, whether /metrics is here."""
    app.title, app.version = settings.project_name, settings.version
    app.description = settings.description
    app.state.settings = settings
    for route in app.router.routes:
        if isinstance(route, SwitchableRoute):  # /metrics: gunicorn's master serves them
            route.switch(settings.metrics_port is None)


def _add_routes(app: FastAPI) -> None:
    app.state.methods = MethodTable()
    # Routes are matched in the order they were added: the todos, which carry nearly all the
    # traffic, come right after the two health probes. (The docs list their sections in
    # OPENAPI_TAGS order regardless.)
    app.include_router(health_router)
    routers = (todos_router, lists_router, labels_router, changes_router, auth_router, users_router)
    for router in routers:
        # Any of them may answer 429 past the rate limit (app.ratelimit).
        app.include_router(router, prefix=API_PREFIX, responses=error_responses(429))
    _add_meta_routes(app)
    for route in app.router.routes:
        if isinstance(route, Route):
            app.state.methods.add(route.path, route.methods or ())


def _settings_middleware(app: ASGIApp, settings: Settings) -> ASGIApp:
    """`app` in the middleware whose options are settings, innermost first."""
    if settings.cors_origins:
        app = CORSMiddleware(
            app,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[
                "ETag",
                "Location",
                "X-Request-ID",
                "Retry-After",
                "RateLimit",
                "RateLimit-Policy",
            ],
        )
    # Last, so it is outermost: its headers land on every response, CORS ones included.
    return RequestContextMiddleware(
        app,
        max_body_bytes=settings.max_body_bytes,
        body_limits={f"{API_PREFIX}/auth/": settings.auth_max_body_bytes},
        docs_paths=frozenset({DOCS_URL, REDOC_URL}),
        access_log=settings.access_log,
    )


def _add_meta_routes(app: FastAPI) -> None:
    @app.get("/", tags=["meta"])
    async def root() -> ServiceInfo:
        """Service name, version and where the docs are."""
        return ServiceInfo(name=app.title, version=app.version, docs_url=DOCS_URL)

    @app.get("/api/info", tags=["meta"])
    async def info() -> ApiInfo:
        """What this service is and where its docs live."""
        return ApiInfo(
            name=app.title,
            version=app.version,
            description=app.description,
            docs_url=DOCS_URL,
            redoc_url=REDOC_URL,
            openapi_url=app.openapi_url or "",
        )

    async def metrics() -> Response:
        """Prometheus metrics, summed over every worker process."""
        body, content_type = await run_in_threadpool(render_metrics)
        return Response(body, media_type=content_type)

    # Switched off by METRICS_PORT, when gunicorn's master serves them (gunicorn_conf.py).
    app.router.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        tags=["meta"],
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
        route_class_override=SwitchableRoute,
    )


# What uvicorn and gunicorn serve (app.main:app): configured as it starts (see create_app).
app = create_app()
