"""Sampling decided before the ASGI instrumentation runs (imported only while tracing is on).

A request whose trace is not sampled records nothing, but the instrumentations still did
most of their work for it: matching the route to name a span nobody sees, collecting the
request's attributes, building every statement's. Measured (bench/cost.py), that was some 640
of the ~800 Python calls tracing added to a todo read, so a 10% sampler saved little more than
the export. Here the SDK's own sampler (OTEL_TRACES_SAMPLER) decides first, on the incoming
traceparent and on a trace id drawn up front:

- sampled: the request goes through the instrumented stack, and the SDK, drawing its trace
  id, gets the same one from PresetTraceIds, so its sampler decides the same;
- not sampled: through the same app without the instrumentation's layers, with the
  instrumentations suppressed (no statement work), in the caller's context, so that log lines
  still carry a caller's trace id.
"""

import random
from contextvars import ContextVar

from opentelemetry import context, propagate, trace
from opentelemetry.instrumentation.asgi import asgi_getter
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision
from starlette.types import ASGIApp, Receive, Scope, Send

from app.tracing_provider import LateTracerProvider

_preset: ContextVar[int] = ContextVar("preset_trace_id", default=0)


class PresetTraceIds(RandomIdGenerator):
    """The SDK's random ids, except that the trace id drawn for a request's server span is the
    one SampleFirst drew and decided on."""

    def generate_trace_id(self) -> int:
        preset = _preset.get()
        if preset:
            _preset.set(0)  # once: any other root span in the request draws its own
            return preset
        return super().generate_trace_id()


def _trace_id() -> int:
    return random.getrandbits(128) or 1  # a trace id, drawn as the SDK draws one


class SampleFirst:
    """The app's stack with the instrumentation (`traced`) and without it (`plain`); the
    sampler is the provider's that the lifespan set (none yet or any more: nothing traced)."""

    def __init__(self, traced: ASGIApp, plain: ASGIApp, provider: LateTracerProvider) -> None:
        self.traced, self.plain, self.provider = traced, plain, provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.traced(scope, receive, send)
            return
        caller = propagate.extract(scope, getter=asgi_getter)  # type: ignore[misc]
        parent = trace.get_current_span(caller).get_span_context()
        trace_id = parent.trace_id if parent.is_valid else _trace_id()
        sampler = self.provider.sampler
        if sampler is None:
            result = None
        else:
            result = sampler.should_sample(caller, trace_id, "request", trace.SpanKind.SERVER)
        if result is not None and result.decision is not Decision.DROP:
            token = _preset.set(0 if parent.is_valid else trace_id)
            try:
                await self.traced(scope, receive, send)
            finally:
                _preset.reset(token)
            return
        attached = context.attach(caller)
        try:
            with suppress_instrumentation():
                await self.plain(scope, receive, send)
        finally:
            context.detach(attached)
