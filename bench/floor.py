"""Reference apps for bench/floors.py: how fast the stack itself can go, served like the service.

- `middleware_app`: bench/ceiling.py's one route behind the service's own request middleware
  (request id, security headers, metrics, the JSON access line; ACCESS_LOG=false drops the
  line). What /health can reach while it keeps what issue 17 says must stay.
- `read_app`: the design's least database read. One route, GET /api/v1/todos/{todo_id}, with
  the service's own engine (app.engines.create_db_engine) and session dependency (SessionDep),
  one statement by primary key, TodoRead as the response model. No auth, no middleware, no
  ETag: what a todo read costs before the service adds anything to it.
- `asyncpg_app`: the same read on an asyncpg pool, without SQLAlchemy: what the session and
  the engine cost, for comparison (the design's routes use the AsyncSession).

They read the database the service migrated and bench/run.py seeded (DATABASE_URL).
"""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from fastapi import FastAPI, HTTPException, Request
from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from app.config import Settings
from app.database import SessionDep, create_sessionmaker
from app.engines import create_db_engine, database_url
from app.logs import configure_logging
from app.middleware import RequestContextMiddleware
from app.todos.fields import READ_COLUMNS
from app.todos.schemas import TodoRead
from bench.ceiling import app as middleware_app

configure_logging("INFO", "json")
middleware_app.add_middleware(
    RequestContextMiddleware,
    max_body_bytes=1_000_000,
    access_log=os.environ.get("ACCESS_LOG", "true") != "false",
)


@asynccontextmanager
async def _session_lifespan(app: FastAPI) -> AsyncIterator[None]:
    engine = create_db_engine(Settings())
    app.state.sessionmaker = create_sessionmaker(engine)
    yield
    await engine.dispose()


read_app = FastAPI(lifespan=_session_lifespan)
_GET = select(*READ_COLUMNS).where(READ_COLUMNS[0] == bindparam("todo_id"))


@read_app.get("/api/v1/todos/{todo_id}")
async def read_todo(todo_id: uuid.UUID, session: SessionDep) -> TodoRead:
    row = (await session.execute(_GET, {"todo_id": todo_id})).first()
    if row is None:
        raise HTTPException(404)
    return TodoRead.model_validate(row)


@asynccontextmanager
async def _pool_lifespan(app: FastAPI) -> AsyncIterator[None]:
    url = database_url(Settings(), asynchronous=False).set(drivername="postgresql")
    app.state.pool = await asyncpg.create_pool(url.render_as_string(False), min_size=10)
    yield
    await app.state.pool.close()


asyncpg_app = FastAPI(lifespan=_pool_lifespan)
_SQL = str(_GET.compile(dialect=asyncpg_dialect()))  # type: ignore[no-untyped-call]  # the same SQL, with $1


@asyncpg_app.get("/api/v1/todos/{todo_id}")
async def read_todo_asyncpg(todo_id: uuid.UUID, request: Request) -> TodoRead:
    async with request.app.state.pool.acquire() as connection:
        row: Any = await connection.fetchrow(_SQL, todo_id)
    if row is None:
        raise HTTPException(404)
    return TodoRead.model_validate(dict(row))
