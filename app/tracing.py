"""OpenTelemetry traces (API.md, "Tracing (v1.2)"), configured only by the SDK's OTEL_* variables.

Off unless an OTLP endpoint is set: then nothing of OpenTelemetry is even imported, and a
request costs exactly what it did before. On, create_app() wires the instrumentation into the
app as it builds it (instrument(): FastAPI/ASGI, a server span per request, the incoming W3C
traceparent continued), with a provider that stands in for the real one until the lifespan
sets it (app.tracing_provider). Each app's lifespan (in the worker: after gunicorn's fork, so
the exporter's thread and connections belong to the process that uses them) builds that tracer
provider with a batch processor and an OTLP exporter, instruments a copy of its engine that
sampled requests use (SQLAlchemy: a span per statement, parameters never included;
app.tracing_database), and shuts it all down when the lifespan ends: a stopping worker
exports what it still holds.

The SDK reads its own variables (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
OTEL_TRACES_SAMPLER[_ARG], OTEL_BSP_*, OTEL_EXPORTER_OTLP_*); this module only chooses the
exporter by OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL and names the service when nothing else does.
"""

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app import logs

if TYPE_CHECKING:  # imported for real only when tracing is on
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

    from app.tracing_provider import LateTracerProvider

T = TypeVar("T")

DEFAULT_SERVICE_NAME = "todo-api"
ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
PROTOCOLS = ("http/protobuf", "grpc")
# The variables the README's Configuration table, .env.example, compose and the Kubernetes
# example name (the drift tests hold them to this list). The SDK reads more (its
# documentation's); these are the ones a deployment sets.
VARIABLES = (
    "OTEL_SDK_DISABLED",
    *ENDPOINTS,
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BSP_EXPORT_TIMEOUT",
)
# The instrumentations speak the stable HTTP and database conventions (http.request.method,
# url.path, db.system.name, db.query.text) only when asked to.
STABLE_CONVENTIONS = ("http", "database")
# The server span's receive and send spans (one per ASGI message) say nothing a server span's
# duration does not, and would double the spans per request.
EXCLUDED_SPANS: list[Any] = ["receive", "send"]
REDACTED = "REDACTED"
_CONVERTER = re.compile(r"\{(\w+):\w+\}")


# What start() imports, and what the SDK loads by entry point (the default propagators): the
# image writes their bytecode at build time (docker/warm_bytecode.py), as for every module the
# service imports, though a service without an endpoint never imports them.
MODULES = (
    "opentelemetry.sdk.trace",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk.resources",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.instrumentation.fastapi",
    "opentelemetry.instrumentation.sqlalchemy",
    "opentelemetry.trace.propagation.tracecontext",
    "opentelemetry.baggage.propagation",
    "app.tracing_sampling",
    "app.tracing_provider",
    "app.tracing_database",
)


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """An endpoint is set and the SDK is not disabled (an empty variable counts as unset)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINTS)


def protocol(environ: Mapping[str, str] = os.environ) -> str:
    """The OTLP protocol asked for; anything this service cannot speak stops the startup."""
    chosen = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if chosen not in PROTOCOLS:
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={chosen!r}: this service exports traces over "
            f"{' or '.join(PROTOCOLS)}"
        )
    return chosen


@dataclass
class Tracing:
    """One app's tracing while its lifespan runs: the provider, and what to undo."""

    provider: "TracerProvider"
    tracer: "Tracer"
    _undo: list[Callable[[], object]] = field(default_factory=list)

    def in_span(self, name: str, work: Callable[..., T], *args: Any) -> Callable[[], T]:
        """`work(*args)` to run on another thread (the hashing thread) inside a span of `name`
        that is a child of the span active here: a thread starts with no context of its own."""
        from opentelemetry import context, trace

        parent = context.get_current()
        if not trace.get_current_span(parent).is_recording():
            # A request not sampled: a span here would start a trace of its own.
            return lambda: work(*args)

        def traced() -> T:
            with self.tracer.start_as_current_span(name, context=parent):
                return work(*args)

        return traced

    def shutdown(self) -> None:
        for undo in reversed(self._undo):
            undo()
        # Exports every span still queued (bounded by OTEL_BSP_EXPORT_TIMEOUT), then stops the
        # exporter's thread.
        self.provider.shutdown()


def _prepare(environ: MutableMapping[str, str]) -> None:
    # As everywhere in this service's settings, an empty variable means unset (compose forwards
    # every one, empty): the SDK would read OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="" as the URL.
    for name in [name for name, value in environ.items() if name.startswith("OTEL_")]:
        if not environ[name].strip():
            del environ[name]
    _ask_for_stable_conventions(environ)


def instrument(app: FastAPI, environ: MutableMapping[str, str] = os.environ) -> None:
    """When enabled(), wire the ASGI instrumentation into `app` as it is built (create_app),
    behind the sampler's early decision (app/tracing_sampling.py), with a stand-in for the
    tracer provider that start() sets in the serving process. Nothing at all otherwise."""
    if not enabled(environ):
        return
    # Before the instrumentation reads them: it fixes the conventions it speaks for good.
    _prepare(environ)
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    from app.tracing_provider import LateTracerProvider
    from app.tracing_sampling import SampleFirst

    late = app.state.late_tracer_provider = LateTracerProvider()
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=late, server_request_hook=_on_request, exclude_spans=EXCLUDED_SPANS
    )
    # Both stacks, the instrumented one and the app's own, behind the sampler: built when the
    # app first runs (its lifespan), like any middleware added here.
    traced, plain = app.build_middleware_stack, app._original_build_middleware_stack  # type: ignore[attr-defined]
    setattr(  # noqa: B010 - mypy refuses assigning to a method
        app, "build_middleware_stack", lambda: SampleFirst(traced(), plain(), late)
    )


def _late_provider(app: FastAPI) -> "LateTracerProvider | None":
    late: LateTracerProvider | None = getattr(app.state, "late_tracer_provider", None)
    return late


def start(
    app: FastAPI, engine: AsyncEngine, environ: MutableMapping[str, str] = os.environ
) -> Tracing:
    """Trace `app` (instrumented by instrument()) and `engine`, in the process that serves."""
    late = _late_provider(app)
    if late is None:
        raise RuntimeError("tracing.start() on an app that instrument() did not wire")
    _prepare(environ)
    chosen = protocol(environ)

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from app.tracing_database import trace_database
    from app.tracing_sampling import PresetTraceIds

    # shutdown_on_exit: an atexit hook as a second chance; the lifespan's shutdown is the first.
    provider = TracerProvider(
        resource=_resource(), id_generator=PresetTraceIds(), shutdown_on_exit=True
    )
    provider.add_span_processor(BatchSpanProcessor(_exporter(chosen)))
    tracing = Tracing(provider, provider.get_tracer("app"))
    # From now on the app's server spans go to this provider; after the lifespan, nowhere.
    late.set(provider)
    tracing._undo.append(lambda: late.set(None))
    # The SQLAlchemy instrumentation, for sampled requests' sessions only. (Its package
    # declares sqlalchemy < 2.1 while it only listens to engine events that 2.1 still sends:
    # tests/runtime/test_tracing.py sees the statements arrive.)
    tracing._undo.append(trace_database(app, engine, provider))
    logs.correlate(_span_ids_reader())
    tracing._undo.append(lambda: logs.correlate(None))
    return tracing


def _ask_for_stable_conventions(environ: MutableMapping[str, str]) -> None:
    """OTEL_SEMCONV_STABILITY_OPT_IN with http and database in it (or their /dup forms, which
    emit the old attributes beside the stable ones), whatever else it names."""
    asked = [item.strip() for item in environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "").split(",")]
    for convention in STABLE_CONVENTIONS:
        if convention not in asked and f"{convention}/dup" not in asked:
            asked.append(convention)
    environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = ",".join(item for item in asked if item)


def _resource() -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    # Resource.create() reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; without either
    # naming the service it says unknown_service. process.pid tells a replica's workers apart.
    resource = Resource.create({"process.pid": os.getpid()})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def _exporter(chosen: str) -> Any:
    # Each reads its endpoint, headers, timeout and compression from OTEL_EXPORTER_OTLP_*.
    if chosen == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter()


def _on_request(span: "Span", scope: dict[str, Any]) -> None:
    """The server span, as the ASGI instrumentation started it, made to say what the contract
    does (and what the access line and the metrics say)."""
    if not span.is_recording():
        return
    # The instrumentation names the span after the route's path as declared, converters and
    # all ({todo_id:item_id}): the template is the path without them, as Starlette's
    # path_format has it (app.middleware.route_template).
    route = getattr(span, "attributes", {}).get("http.route")
    if isinstance(route, str) and ":" in route:
        template = _CONVERTER.sub(r"{\1}", route)
        span.set_attribute("http.route", template)
        span.update_name(f"{scope['method']} {template}")
    # url.query keeps the parameters' names, never their values: `q` is text searched for in
    # titles and descriptions, `cursor` is a token.
    query = scope.get("query_string", b"")
    if query:
        names = [(name, REDACTED) for name, _ in parse_qsl(query.decode("latin-1"), True)]
        span.set_attribute("url.query", urlencode(names))


def _span_ids_reader() -> Callable[[], tuple[str, str] | None]:
    from opentelemetry.trace import get_current_span

    def span_ids() -> tuple[str, str] | None:
        """The active span's trace and span ids, lowercase hex as in traceparent, or None."""
        span_context = get_current_span().get_span_context()
        if not span_context.is_valid:
            return None
        return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"

    return span_ids


@contextlib.contextmanager
def traced(app: FastAPI, engine: AsyncEngine) -> Iterator[Tracing | None]:
    """start() for the length of the block when instrument() wired the app, else nothing."""
    if _late_provider(app) is None:
        yield None
        return
    tracing = start(app, engine)
    try:
        yield tracing
    finally:
        tracing.shutdown()
