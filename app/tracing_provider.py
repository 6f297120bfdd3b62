"""A tracer provider an app is instrumented with when it is built, before the real one exists
(imported only while tracing is on).

The ASGI instrumentation asks its provider for a tracer once, as create_app() wires it, and
starts every server span on that tracer. The SDK's provider, with its exporter's thread and
connections, must be built later, in the process that serves (under gunicorn: the worker,
after the fork): the lifespan's app.tracing.start(). So the instrumentation gets this one, whose
tracers pass every call to the real provider once the lifespan has set it (set()), and to a
no-op tracer before and after. Like the API's ProxyTracerProvider, but one per app rather than
the process-wide global, which can be set only once.
"""

from collections.abc import Iterator
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.trace import NoOpTracer, Span, Tracer
from opentelemetry.trace import TracerProvider as ApiTracerProvider
from opentelemetry.util._decorator import _agnosticcontextmanager


class LateTracerProvider(ApiTracerProvider):
    def __init__(self) -> None:
        self.real: TracerProvider | None = None

    def set(self, provider: TracerProvider | None) -> None:
        self.real = provider

    @property
    def sampler(self) -> Sampler | None:
        """The real provider's sampler (None while there is none: nothing is traced)."""
        return None if self.real is None else self.real.sampler

    def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
        return _LateTracer(self, args, kwargs)


class _LateTracer(Tracer):
    def __init__(
        self, provider: LateTracerProvider, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._provider, self._args, self._kwargs = provider, args, kwargs
        self._for: TracerProvider | None = None
        self._real: Tracer = NoOpTracer()

    @property
    def _tracer(self) -> Tracer:
        # The real provider's tracer, asked for once per provider (a lookup per span would
        # cost a lock in the SDK).
        real = self._provider.real
        if real is not self._for:
            self._for = real
            self._real = (
                NoOpTracer() if real is None else real.get_tracer(*self._args, **self._kwargs)
            )
        return self._real

    def start_span(self, *args: Any, **kwargs: Any) -> Span:
        return self._tracer.start_span(*args, **kwargs)

    @_agnosticcontextmanager  # as the API's tracers: a context manager and a decorator
    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Iterator[Span]:
        with self._tracer.start_as_current_span(*args, **kwargs) as span:
            yield span
