"""OpenTelemetry setup for every service, and W3C trace-context propagation through Kafka headers.

`setup_telemetry(service)` reads the standard OTEL_* variables:

  OTEL_SERVICE_NAME              overrides the service name passed in
  OTEL_EXPORTER_OTLP_ENDPOINT    e.g. http://otel-collector:4317 (gRPC)
  OTEL_TRACES_EXPORTER           otlp | console | none   (default: otlp with an endpoint, else none)
  OTEL_METRICS_EXPORTER          otlp | console | none   (same default)
  OTEL_METRIC_EXPORT_INTERVAL    milliseconds (default 10000)

With no endpoint and no exporter variables nothing is exported, so tests and embedded runs need no
collector; spans and metrics are still recorded by the SDK (tests can add their own readers).
Resource attributes: service.name, service.instance.id (host-pid-random unless OTEL_RESOURCE_ATTRIBUTES
sets it). The SDK also reads OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (e.g. parentbased_traceidratio
with 0.01 on a 100k-GPU site) and OTEL_BSP_SCHEDULE_DELAY (how often spans are exported).

Traces across Kafka (DESIGN §4, README "Observability"): every record carries the W3C `traceparent` of
its creation context. A twin that turns one input record into outputs publishes each output from a
PRODUCER span "send <topic>" whose PARENT is that input's creation context (`EventProducer.enqueue(...,
cause=record)`), so the output stays in the input's trace. A twin that aggregates many inputs into one
evaluation (cooling's tick, jobs' refresh) collects the inputs' contexts in `Causes` and runs the
evaluation in `caused_span(...)`: a span whose parent is the NEWEST cause (the record that triggered
it) and which LINKS to the other causes (at most MAX_LINKS) and to the consumer's batch span. Per-message
spans are only made while some span processor records them (`tracing_enabled()`): a span costs
tens of microseconds, too much per record when nothing is exported.

Traces across gRPC: `inject_metadata` / `extract_metadata` carry the same W3C context in call metadata
(twin.core.grpc_client sends it from a CLIENT span, twin.core.grpc_server's SERVER span continues it).
HTTP receivers (ingest's Redfish endpoint) continue a caller's `traceparent` header with `server_span`.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

KafkaHeaders = list[tuple[str, bytes]]
EXPORTERS = ("otlp", "console", "none")

_W3C = TraceContextTextMapPropagator()


@dataclass
class Telemetry:
    service_name: str
    tracer: trace.Tracer
    meter: metrics.Meter
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporters: dict[str, str] = field(default_factory=dict)

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def _exporter_choice(env: Mapping[str, str], signal: str) -> str:
    raw = env.get(f"OTEL_{signal.upper()}_EXPORTER")
    if raw is None or raw.strip() == "":
        return "otlp" if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "none"
    choice = raw.split(",")[0].strip().lower()
    if choice not in EXPORTERS:
        raise ValueError(f"OTEL_{signal.upper()}_EXPORTER={raw!r}: expected one of {', '.join(EXPORTERS)}")
    return choice


_GLOBAL_SET = False


def setup_telemetry(
    service_name: str,
    *,
    environ: Mapping[str, str] | None = None,
    metric_readers: Iterable[MetricReader] = (),
    span_processors: Iterable[SpanProcessor] = (),
    set_global: bool = True,
) -> Telemetry:
    """Build tracer + meter providers from OTEL_* variables; install them globally once per process."""
    global _GLOBAL_SET
    env = dict(os.environ if environ is None else environ)
    name = env.get("OTEL_SERVICE_NAME") or service_name
    attrs = {
        "service.name": name,
        "service.instance.id": f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
    }
    for item in filter(None, env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")):
        if "=" in item:
            k, v = item.split("=", 1)
            attrs[k.strip()] = v.strip()
    attrs["service.name"] = name
    resource = Resource.create(attrs)

    traces = _exporter_choice(env, "traces")
    tracer_provider = TracerProvider(resource=resource)
    if traces == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif traces == "console":
        tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    for processor in span_processors:
        tracer_provider.add_span_processor(processor)

    metrics_choice = _exporter_choice(env, "metrics")
    readers: list[MetricReader] = list(metric_readers)
    interval = float(env.get("OTEL_METRIC_EXPORT_INTERVAL", "10000"))
    if metrics_choice == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=interval))
    elif metrics_choice == "console":
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=interval))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)

    if set_global and not _GLOBAL_SET:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        propagate.set_global_textmap(_W3C)
        _GLOBAL_SET = True
    return Telemetry(
        service_name=name,
        tracer=tracer_provider.get_tracer(f"twin.{service_name}"),
        meter=meter_provider.get_meter(f"twin.{service_name}"),
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        exporters={"traces": traces, "metrics": metrics_choice},
    )


# -- W3C trace context <-> Kafka headers ---------------------------------------------------------


class _HeaderSetter(Setter[KafkaHeaders]):
    def set(self, carrier: KafkaHeaders, key: str, value: str) -> None:
        carrier[:] = [(k, v) for k, v in carrier if k != key]
        carrier.append((key, value.encode()))


class _HeaderGetter(Getter[Iterable[tuple[str, bytes]]]):
    def get(self, carrier: Iterable[tuple[str, bytes]], key: str) -> list[str] | None:
        found = [v.decode("latin-1") for k, v in carrier or () if k == key and v is not None]
        return found or None

    def keys(self, carrier: Iterable[tuple[str, bytes]]) -> list[str]:
        return [k for k, _ in carrier or ()]


_SETTER = _HeaderSetter()
_GETTER = _HeaderGetter()


def inject_headers(headers: KafkaHeaders | None = None, context: Context | None = None) -> KafkaHeaders:
    """Add `traceparent` (+ `tracestate`) of the current (or given) span context to Kafka headers."""
    carrier: KafkaHeaders = list(headers or [])
    _W3C.inject(carrier, context=context, setter=_SETTER)
    return carrier


def inject_current(headers: KafkaHeaders) -> KafkaHeaders:
    """`inject_headers(headers)` for the producer's fresh header list (no traceparent/tracestate in it yet),
    appended in place: what the W3C propagator adds, without its Context and setter calls (one per record).
    Its rules: nothing when the current span context equals INVALID_SPAN_CONTEXT; else `traceparent`
    version 00 (W3C Trace Context §3.2: "00-" 32 hex trace id "-" 16 hex parent id "-" 2 hex flags, lower
    case), then `tracestate` when the trace state is not empty."""
    span_context = trace.get_current_span().get_span_context()
    if span_context is trace.INVALID_SPAN_CONTEXT or span_context == trace.INVALID_SPAN_CONTEXT:
        return headers
    headers.append(("traceparent", b"00-%032x-%016x-%02x" % (
        span_context.trace_id, span_context.span_id, span_context.trace_flags)))
    if span_context.trace_state:
        headers.append(("tracestate", span_context.trace_state.to_header().encode()))
    return headers


def extract_context(headers: Iterable[tuple[str, bytes]] | None) -> Context:
    """The trace context carried in Kafka headers (an empty context when there is none)."""
    return _W3C.extract(list(headers or []), getter=_GETTER)


# -- W3C trace context <-> gRPC metadata (twin.core.grpc_client / grpc_server) ----------------------

GrpcMetadata = list[tuple[str, str | bytes]]


class _MetadataSetter(Setter[GrpcMetadata]):
    def set(self, carrier: GrpcMetadata, key: str, value: str) -> None:
        carrier[:] = [(k, v) for k, v in carrier if k != key]
        carrier.append((key, value))


class _MetadataGetter(Getter[Iterable[tuple[str, Any]]]):
    def get(self, carrier: Iterable[tuple[str, Any]], key: str) -> list[str] | None:
        found = [v.decode("latin-1") if isinstance(v, bytes) else v for k, v in carrier or () if k == key]
        return found or None

    def keys(self, carrier: Iterable[tuple[str, Any]]) -> list[str]:
        return [k for k, _ in carrier or ()]


_MD_SETTER = _MetadataSetter()
_MD_GETTER = _MetadataGetter()


def inject_metadata(metadata: Iterable[tuple[str, str | bytes]] = (), context: Context | None = None) -> GrpcMetadata:
    """gRPC metadata plus `traceparent` (+ `tracestate`) of the current (or given) span context (the W3C
    propagator: nothing is added for an invalid context)."""
    carrier: GrpcMetadata = list(metadata)
    _W3C.inject(carrier, context=context, setter=_MD_SETTER)
    return carrier


def extract_metadata(metadata: Iterable[tuple[str, Any]] | None) -> Context | None:
    """The caller's trace context from gRPC invocation metadata, or None when it carries no `traceparent`."""
    md = list(metadata or ())
    if not any(k == "traceparent" for k, _ in md):
        return None
    return _W3C.extract(md, getter=_MD_GETTER)


def extract_http_headers(headers: Mapping[str, str] | None) -> Context | None:
    """The caller's trace context from HTTP request headers (W3C Trace Context §3: `traceparent`,
    `tracestate`; a case-insensitive mapping such as aiohttp's), or None when there is no `traceparent`."""
    if not headers or "traceparent" not in headers:
        return None
    return _W3C.extract(headers)


@contextmanager
def server_span(tracer: trace.Tracer, name: str, parent: Context | None, *,
                attributes: Mapping[str, Any] | None = None) -> Iterator[trace.Span]:
    """A current SERVER span continuing the caller's context `parent` (a root when None) while tracing is on
    (`tracing_enabled()`). While it is off, no span: `parent` (when given) is made current as it is, so what
    is published meanwhile still carries the caller's traceparent; the yielded span records nothing."""
    if tracing_enabled():
        with tracer.start_as_current_span(name, context=parent, kind=trace.SpanKind.SERVER,
                                          attributes=attributes) as span:
            yield span
        return
    if parent is None:
        yield trace.get_current_span()
        return
    token = otel_context.attach(parent)
    try:
        yield trace.get_current_span()
    finally:
        otel_context.detach(token)


# W3C Trace Context §3.2 traceparent: version-trace_id-parent_id-flags (lower-case hex); a future version may
# append fields after another "-", version ff is invalid, all-zero ids are invalid.
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.S)


def span_context_from_headers(headers: Iterable[tuple[str, bytes]] | None) -> trace.SpanContext | None:
    """The remote producer's span context, or None when the headers carry no valid traceparent.

    The same answer as `extract_context` (W3C rules: the first traceparent counts, tracestate kept), parsed
    directly: this runs once per consumed record that a twin follows, and the propagator's Context round
    trip costs several times more."""
    parent = state = None
    for key, value in headers or ():
        if key == "traceparent" and parent is None:
            parent = value
        elif key == "tracestate" and state is None:
            state = value
    if parent is None:
        return None
    m = _TRACEPARENT.fullmatch(parent.strip() if isinstance(parent, bytes) else b"")
    if m is None or m.group(1) == b"ff" or (m.group(1) == b"00" and m.group(5)):
        return None
    trace_id, span_id = int(m.group(2), 16), int(m.group(3), 16)
    if not trace_id or not span_id:
        return None
    trace_state = None
    if state:
        trace_state = trace.TraceState.from_header([state.decode("latin-1")])
    return trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(int(m.group(4), 16)),
                             trace_state=trace_state)


# -- causes: one trace through aggregating twins ----------------------------------------------------

MAX_LINKS = 32  # span links per aggregating span (the newest causes are kept; `twin.causes.dropped` counts the rest)


def tracing_enabled() -> bool:
    """Whether spans made now are recorded by some span processor (an exporter or a test's reader)."""
    provider = trace.get_tracer_provider()
    processors = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", None)
    if processors is None:  # not the SDK: a no-op/proxy provider records nothing, any other one may
        return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))
    return bool(processors)


@dataclass
class Causes:
    """The creation contexts of the input records an aggregating evaluation has not consumed yet.

    `add(records)` (anything with `.headers`, or SpanContexts) keeps the newest `limit`; `take()` returns
    them oldest first and starts over. Nothing is collected while tracing is off (`tracing_enabled()`).
    """

    limit: int = MAX_LINKS + 1
    items: deque = field(default_factory=deque)
    dropped: int = 0

    def add(self, causes: Iterable[Any]) -> None:
        """Remember the inputs (their headers are parsed only in `take`, for the newest `limit`)."""
        if not tracing_enabled():
            return
        for cause in causes:
            self.items.append(cause)
            if len(self.items) > self.limit:
                self.items.popleft()
                self.dropped += 1

    def take(self) -> tuple[list[trace.SpanContext], int]:
        """(the causes' contexts oldest first, how many older inputs were not kept), and start over. Inputs
        without a trace context are left out."""
        out = [c if isinstance(c, trace.SpanContext) else span_context_from_headers(c.headers) for c in self.items]
        dropped = self.dropped
        self.items.clear()
        self.dropped = 0
        return [c for c in out if c is not None], dropped

    def span(self, tracer: trace.Tracer, name: str, **kwargs: Any) -> _Scope:
        """`caused_span` over the causes taken now (see `take`); usable in `with` and `async with`."""
        causes, dropped = self.take()
        return _Scope(caused_span(tracer, name, causes, dropped=dropped, **kwargs))


class _Scope:
    """A span context manager that also works in `async with` (next to an asyncio.Lock, say)."""

    def __init__(self, cm: Any) -> None:
        self._cm = cm

    def __enter__(self) -> trace.Span:
        return self._cm.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._cm.__exit__(*exc)

    async def __aenter__(self) -> trace.Span:
        return self._cm.__enter__()

    async def __aexit__(self, *exc: Any) -> Any:
        return self._cm.__exit__(*exc)


@contextmanager
def caused_span(tracer: trace.Tracer, name: str, causes: Sequence[trace.SpanContext], *,
                kind: trace.SpanKind = trace.SpanKind.INTERNAL, dropped: int = 0,
                attributes: Mapping[str, Any] | None = None) -> Iterator[trace.Span]:
    """A current span in the trace of the newest cause (its parent), linked to the other causes and to the
    span current now (the consumer's batch span). Without causes: a child of the current span. While
    tracing is off (`tracing_enabled()`), no span: the current span is yielded and stays current."""
    if not tracing_enabled():  # nothing records it: no span (the current one stays current)
        yield trace.get_current_span()
        return
    attrs = dict(attributes or {})
    current = trace.get_current_span().get_span_context()
    if not causes:
        with tracer.start_as_current_span(name, kind=kind, attributes=attrs) as span:
            yield span
        return
    parent = causes[-1]
    links = [trace.Link(c, {"twin.link": "cause"}) for c in causes[-1 - MAX_LINKS:-1]]
    if current.is_valid and current.trace_id != parent.trace_id:
        links.append(trace.Link(current, {"twin.link": "batch"}))
    attrs["twin.causes"] = len(causes) + dropped
    if dropped or len(causes) - 1 > MAX_LINKS:
        attrs["twin.causes.dropped"] = dropped + max(0, len(causes) - 1 - MAX_LINKS)
    ctx = trace.set_span_in_context(trace.NonRecordingSpan(parent))
    with tracer.start_as_current_span(name, context=ctx, kind=kind, links=links, attributes=attrs) as span:
        yield span
