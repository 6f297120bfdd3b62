"""The application: `app` (what uvicorn and gunicorn serve as app.main:app) and its factory.

create_app(): routers, middleware, handlers, all wired as it builds the app; its lifespan
(app.lifespan): settings (if not given) → engine → migrations. `app = create_app()` below reads no
configuration when this module is imported (tests import it with environments of their own,
and gunicorn's master imports it before RESET_DB is cleared for the workers): without
settings, the app reads them as the server starts it, and what they shape (CORS, body limits,
whether /metrics is served here) takes that shape then (app.wiring).
"""

from fastapi import FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route
from starlette.types import ASGIApp

from app import openapi, tracing
from app.accounts.auth_router import router as auth_router
from app.accounts.users_router import router as users_router
from app.changes.router import router as changes_router
from app.config import Settings
from app.errors import error_responses, register_error_handlers
from app.health.router import router as health_router
from app.lifespan import lifespan
from app.lists.router import router as lists_router
from app.meta import ApiInfo, ServiceInfo
from app.metrics import render as render_metrics
from app.middleware import PlainStartupRefusal, RequestContextMiddleware
from app.ratelimit.middleware import RateLimitMiddleware
from app.routing import MethodTable
from app.todos.labels_router import router as labels_router
from app.todos.router import router as todos_router
from app.wiring import SettingsMiddleware, SwitchableRoute, configure

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
    openapi.install(app, rate_limited=f"{API_PREFIX}/")
    register_error_handlers(app)
    _add_routes(app)
    # Inside CORS (a browser may read a 429 and its fields; preflights are not counted), and
    # inside the request context (a 429 has its request id and no-store like any error).
    app.add_middleware(RateLimitMiddleware, prefix=API_PREFIX)
    app.add_middleware(PlainStartupRefusal)
    # Outermost: CORS and the request context, as the settings (known now or at startup) say.
    app.add_middleware(SettingsMiddleware, build=_settings_middleware)
    # OTEL_* only (app/tracing.py): outermost of all when on; its provider comes in the lifespan.
    tracing.instrument(app)
    if settings is not None:
        configure(app, settings)
    return app


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
