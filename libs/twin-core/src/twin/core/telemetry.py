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
sets it).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

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


def extract_context(headers: Iterable[tuple[str, bytes]] | None) -> Context:
    """The trace context carried in Kafka headers (an empty context when there is none)."""
    return _W3C.extract(list(headers or []), getter=_GETTER)


def span_context_from_headers(headers: Iterable[tuple[str, bytes]] | None) -> trace.SpanContext | None:
    """The remote producer's span context, or None when the headers carry no valid traceparent."""
    ctx = trace.get_current_span(extract_context(headers)).get_span_context()
    return ctx if ctx.is_valid else None
