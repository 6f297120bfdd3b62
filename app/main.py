"""The application: `app` (what uvicorn and gunicorn serve as app.main:app) and its factory.

create_app(): settings → routers, middleware, handlers; its lifespan: engine → migrations.
`app = create_app()` below reads no configuration when this module is imported (tests import
it with environments of their own, and gunicorn's master imports it before RESET_DB is
cleared for the workers): without settings, the app reads them as the server starts it.
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

from app import demo, migrations, openapi, tracing
from app.auth.router import router as auth_router
from app.auth.security import PasswordHasher, TokenCodec
from app.changes.router import router as changes_router
from app.changes.tokens import ChangeTokens
from app.config import Settings, get_settings
from app.database import (
    create_db_engine,
    create_migration_engine,
    create_sessionmaker,
    transaction,
)
from app.errors import register_error_handlers
from app.health.router import router as health_router
from app.lists.router import router as lists_router
from app.logs import configure_logging
from app.meta import ApiInfo, ServiceInfo
from app.metrics import render as render_metrics
from app.middleware import PlainStartupRefusal, RequestContextMiddleware
from app.purge import purge_periodically
from app.routing import MethodTable
from app.todos.router import router as todos_router
from app.users import service as users
from app.users.router import router as users_router

API_PREFIX = "/api/v1"
# The docs' sections, in the order a new user needs them.
OPENAPI_TAGS = [
    {"name": "auth", "description": "Sign up, log in (also through **Authorize**), tokens."},
    {"name": "users", "description": "Your account; superusers manage everyone's."},
    {"name": "todos", "description": "Your todos."},
    {"name": "lists", "description": "Your lists of todos, in your order."},
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
    # Building these costs a bcrypt hash (the dummy one) and may create the dev key file.
    app.state.hasher = await run_in_threadpool(
        PasswordHasher, settings.bcrypt_rounds, settings.hash_queue_limit
    )
    app.state.token_codec = await run_in_threadpool(TokenCodec, settings)
    app.state.change_tokens = await run_in_threadpool(ChangeTokens, settings)
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
        app.state.hasher.close()
        spans.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application, configured from `settings` now (tests pass their own), or without them
    from get_settings() when the server starts it: in its lifespan, so that a bad setting is a
    failed startup the server reports and exits on, never an error at import."""
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
    # Here, not in _configure: the lifespan that may fail runs in the stack built before it.
    app.add_middleware(PlainStartupRefusal)
    if settings is not None:
        _configure(app, settings)
    return app


def _configure(app: FastAPI, settings: Settings) -> None:
    """Everything that depends on the settings: title, routes, middleware, handlers."""
    app.title, app.version = settings.project_name, settings.version
    app.description = settings.description
    app.state.settings = settings
    # From the lifespan, the stack it runs in is built already, without the middleware added
    # below: the first request builds it again, with them (no request comes before startup).
    app.middleware_stack = None
    register_error_handlers(app)
    app.state.methods = MethodTable()
    # Routes are matched in the order they were added: the todos, which carry nearly all the
    # traffic, come right after the two health probes. (The docs list their sections in
    # OPENAPI_TAGS order regardless.)
    app.include_router(health_router)
    for router in (todos_router, lists_router, changes_router, auth_router, users_router):
        app.include_router(router, prefix=API_PREFIX)
    _add_meta_routes(app)
    for route in app.router.routes:
        if isinstance(route, Route):
            app.state.methods.add(route.path, route.methods or ())
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "Location", "X-Request-ID", "Retry-After"],
        )
    # Added last, so it is outermost: its headers land on every response, CORS ones included.
    app.add_middleware(
        RequestContextMiddleware,
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

    if app.state.settings.metrics_port is not None:
        return  # gunicorn's master serves them on METRICS_PORT (gunicorn_conf.py)

    @app.get(
        "/metrics",
        tags=["meta"],
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics() -> Response:
        """Prometheus metrics, summed over every worker process."""
        body, content_type = await run_in_threadpool(render_metrics)
        return Response(body, media_type=content_type)


# What uvicorn and gunicorn serve (app.main:app): configured as it starts (see create_app).
app = create_app()
