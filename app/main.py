"""The application factory: settings → engine → migrations → routers, middleware, handlers."""

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from app import demo, migrations
from app.auth.router import router as auth_router
from app.auth.security import PasswordHasher, TokenCodec
from app.config import Settings, get_settings
from app.database import create_db_engine, create_session_factory
from app.errors import register_error_handlers
from app.health.router import router as health_router
from app.middleware import RequestContextMiddleware
from app.todos.router import router as todos_router
from app.users import service as users
from app.users.router import router as users_router

logger = logging.getLogger(__name__)
API_PREFIX = "/api/v1"


def _prepare_database(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    engine = app.state.engine
    if settings.reset_db:
        migrations.reset_database(settings, engine)
        with app.state.session_factory.begin() as session:
            demo.load(session, app.state.hasher)
    elif settings.migrate_on_startup:
        migrations.upgrade_to_head(settings, engine)
    if settings.first_superuser_email and settings.first_superuser_password:
        with app.state.session_factory.begin() as session:
            users.ensure_superuser(
                session,
                app.state.hasher,
                settings.first_superuser_email,
                settings.first_superuser_password.get_secret_value(),
            )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    app.state.started_at = time.monotonic()
    app.state.engine = create_db_engine(settings)
    app.state.session_factory = create_session_factory(app.state.engine)
    # Building these costs a bcrypt hash (the dummy one) and may create the dev key file.
    app.state.hasher = await run_in_threadpool(PasswordHasher, settings.bcrypt_rounds)
    app.state.token_codec = TokenCodec(settings)
    try:
        await run_in_threadpool(_prepare_database, app)
        yield
    finally:
        app.state.engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title=settings.project_name,
        version=settings.version,
        description=settings.description,
        lifespan=lifespan,
        # The contract's paths answer exactly as written; /todos/ is a 404, not a redirect.
        redirect_slashes=False,
    )
    app.state.settings = settings
    register_error_handlers(app)
    app.include_router(health_router)
    app.include_router(auth_router, prefix=API_PREFIX)
    app.include_router(users_router, prefix=API_PREFIX)
    app.include_router(todos_router, prefix=API_PREFIX)
    _add_meta_routes(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "Location", "X-Request-ID", "Retry-After"],
        )
    # Added last, so it is outermost: its headers land on every response, CORS ones included.
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    return app


def _add_meta_routes(app: FastAPI) -> None:
    @app.get("/", tags=["meta"])
    async def root(request: Request) -> dict[str, str | None]:
        """Service name, version and where the docs are."""
        return {"name": app.title, "version": app.version, "docs_url": app.docs_url}

    @app.get("/api/info", tags=["meta"])
    async def info() -> dict[str, str | None]:
        """What this service is and where its docs live."""
        return {
            "name": app.title,
            "version": app.version,
            "description": app.description,
            "docs_url": app.docs_url,
            "redoc_url": app.redoc_url,
            "openapi_url": app.openapi_url,
        }


@lru_cache
def _default_app() -> FastAPI:
    return create_app()


def __getattr__(name: str) -> FastAPI:
    # `app.main:app` for gunicorn and uvicorn, built on first access: importing this module
    # reads no configuration, and tests build their own apps with create_app(settings).
    if name == "app":
        return _default_app()
    raise AttributeError(name)
