"""The database's spans, for sampled requests only (imported only while tracing is on).

SQLAlchemy's instrumentation listens to an engine's events. On the request engine itself,
every statement of every request would run its listeners, sampled or not, only for them to
find the span unrecorded (or the instrumentation suppressed): measured (bench/cost.py), the
event dispatch, the listeners and their checks were most of what a request not sampled
still paid. So the instrumentation listens to a copy of the engine instead
(Engine.execution_options(): the same pool and dialect, the engine's own event listeners,
and listeners of its own that the engine never runs), and a sampled request's session is
bound to that copy (SampledSessions): a request not sampled meets none of them (but for an
empty loop per statement: the instrumentation's handle_error listener sits on the dialect,
which the copy shares, and is a no-op for a statement that has no span).

What the instrumentation would add beside the statements, and how it is kept to sampled
requests:
- its listeners on the pool (a connection-usage metric): a copy shares its engine's pool,
  so they would run for every request; they feed a meter this service never exports
  (metrics are Prometheus', app/metrics.py), and are not registered;
- a span per connection checkout (`connect`: the wait for the pool or the pooler shows
  there), which it gets by wrapping Engine.connect for every engine in the process: here it
  wraps the copy's connect only, and the readiness probe's engine's for sampled requests.
"""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer, _wrap_connect
from opentelemetry.instrumentation.sqlalchemy.version import __version__
from opentelemetry.metrics import NoOpUpDownCounter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer
from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.database import create_sessionmaker
from app.tracing_sampling import sampled_request

# The instrumentor names its tracer after its package.
INSTRUMENTATION = "opentelemetry.instrumentation.sqlalchemy"
POOL_EVENTS = frozenset({"connect", "close", "checkin", "checkout"})


class _StatementTracer(EngineTracer):
    """The instrumentation's listeners on an engine, without those on its pool."""

    @classmethod
    def _register_event_listener(
        cls, target: Any, identifier: str, func: Any, *args: Any, **kw: Any
    ) -> None:
        if identifier not in POOL_EVENTS:
            super()._register_event_listener(target, identifier, func, *args, **kw)  # type: ignore[no-untyped-call]


class SampledSessions:
    """app.state.sessionmaker while tracing is on: a session on the traced copy of the engine
    for a sampled request (app.tracing_sampling.SampleFirst says which), on the engine itself
    otherwise (and outside requests: the purge loop, the startup's work)."""

    def __init__(
        self, plain: async_sessionmaker[AsyncSession], traced: async_sessionmaker[AsyncSession]
    ) -> None:
        self.plain, self.traced = plain, traced

    def __call__(self) -> AsyncSession:
        return (self.plain if sampled_request.get() is None else self.traced)()


def _trace_checkouts(engine: Engine, tracer: Tracer, always: bool) -> None:
    """The instrumentation's `connect` span around `engine`'s connect(), for every call
    (`always`) or for sampled requests only."""
    connect, wrapper = engine.connect, _wrap_connect(tracer)  # type: ignore[no-untyped-call]

    def traced_connect() -> Connection:
        if always or sampled_request.get() is not None:
            connection: Connection = wrapper(connect, engine, (), {})
            return connection
        return connect()

    # An attribute of this engine only; deleting it gives the class's method back.
    setattr(engine, "connect", traced_connect)  # noqa: B010 - mypy refuses assigning a method


def trace_database(
    app: FastAPI, engine: AsyncEngine, provider: TracerProvider
) -> Callable[[], None]:
    """Instrument a copy of `engine` and bind sampled requests' sessions to it; returns what
    undoes it (the copy, no longer used, goes with its listeners)."""
    # The tracer the instrumentor would make (its scope and version), on this app's provider.
    tracer = provider.get_tracer(INSTRUMENTATION, __version__)
    traced = engine.execution_options()
    _StatementTracer(tracer, traced.sync_engine, NoOpUpDownCounter("unused"))  # type: ignore[no-untyped-call]
    _trace_checkouts(traced.sync_engine, tracer, always=True)
    probe: Engine = app.state.probe.engine.sync_engine
    _trace_checkouts(probe, tracer, always=False)
    plain = app.state.sessionmaker
    app.state.sessionmaker = SampledSessions(plain, create_sessionmaker(traced))

    def undo() -> None:
        app.state.sessionmaker = plain
        delattr(probe, "connect")  # the attribute set above: the class method again

    return undo
