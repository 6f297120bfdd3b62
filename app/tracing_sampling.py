"""Sampling decided before the ASGI instrumentation runs (imported only while tracing is on).

A request whose trace is not sampled records nothing, but the instrumentations still did
most of their work for it: matching the route to name a span nobody sees, collecting the
request's attributes, building every statement's. Measured (bench/cost.py), that was some 640
of the ~800 Python calls tracing added to a todo read, so a 10% sampler saved little more than
the export. Here the SDK's own sampler (OTEL_TRACES_SAMPLER) decides first, on the incoming
traceparent and on a trace id drawn up front:

- sampled: the request goes through the instrumented stack, and the SDK, drawing its trace
  id, gets the same one from PresetTraceIds, so its sampler decides the same; its session is
  bound to the instrumented copy of the engine (app.tracing_database);
- not sampled: through the same app without the instrumentation's layers, on the engine no
  instrumentation listens to, in the caller's context, so that log lines still carry a
  caller's trace id. A request that carries none of the propagators' headers (most: nothing
  to continue) skips the propagators and the context switch too.
"""

import random
from contextvars import ContextVar

from opentelemetry import context, propagate, trace
from opentelemetry.instrumentation.asgi import asgi_getter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision
from starlette.types import ASGIApp, Receive, Scope, Send

from app.tracing_provider import LateTracerProvider

# Set while a sampled request runs: a cell holding the trace id its server span is to get (0
# once taken, or when it continues a caller's trace). A cell rather than the id itself: one
# context variable to set per request, and a task the request starts shares the cell.
sampled_request: ContextVar[list[int] | None] = ContextVar("sampled_request", default=None)
# The context a request without any propagator's header continues: none.
_NO_CALLER = context.Context()


class PresetTraceIds(RandomIdGenerator):
    """The SDK's random ids, except that the trace id drawn for a request's server span is the
    one SampleFirst drew and decided on."""

    def generate_trace_id(self) -> int:
        cell = sampled_request.get()
        if cell is not None and cell[0]:
            preset, cell[0] = cell[0], 0  # once: any other root span in the request draws its own
            return preset
        return super().generate_trace_id()


class SampleFirst:
    """The app's stack with the instrumentation (`traced`) and without it (`plain`); the
    sampler is the provider's that the lifespan set (none yet or any more: nothing traced)."""

    def __init__(self, traced: ASGIApp, plain: ASGIApp, provider: LateTracerProvider) -> None:
        self.traced, self.plain, self.provider = traced, plain, provider
        # The headers the configured propagators (OTEL_PROPAGATORS; W3C trace context and
        # baggage by default) read, as ASGI spells header names.
        fields = propagate.get_global_textmap().fields
        self.fields = frozenset(name.lower().encode("latin-1") for name in fields)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.traced(scope, receive, send)
            return
        # Inline rather than in functions of their own: this runs for every request, and a
        # request not sampled should cost next to nothing more than with tracing off.
        caller = None
        for name, _ in scope["headers"]:
            if name in self.fields:
                caller = propagate.extract(scope, getter=asgi_getter)  # type: ignore[misc]
                break
        callers_trace_id = 0
        if caller is not None:
            parent = trace.get_current_span(caller).get_span_context()
            if parent.is_valid:
                callers_trace_id = parent.trace_id
        # Else a trace id, drawn as the SDK draws one.
        trace_id = callers_trace_id or random.getrandbits(128) or 1
        sampler = self.provider.sampler
        if sampler is not None:
            decided = caller if caller is not None else _NO_CALLER
            result = sampler.should_sample(decided, trace_id, "request", trace.SpanKind.SERVER)
            if result.decision is not Decision.DROP:
                token = sampled_request.set([0 if callers_trace_id else trace_id])
                try:
                    await self.traced(scope, receive, send)
                finally:
                    sampled_request.reset(token)
                return
        if caller is None:
            await self.plain(scope, receive, send)
            return
        attached = context.attach(caller)
        try:
            await self.plain(scope, receive, send)
        finally:
            context.detach(attached)
