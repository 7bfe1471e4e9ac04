"""Benchmark of tracing through Kafka: `python -m bench otel` -> bench/results/otel.json.

What a twin pays per published message for the trace context (twin.core.kafka.EventProducer.enqueue) and
per aggregating evaluation (twin.core.telemetry.Causes / caused_span), in one process, no broker: the
aiokafka producer is replaced by a stub that returns at once, so the figures are the producer call's own
CPU (protobuf serialization, CloudEvents headers, traceparent, span). The span pipeline is the one a
service runs with OTEL_EXPORTER_OTLP_ENDPOINT set: SDK TracerProvider + BatchSpanProcessor, its exporter
encoding every batch to an OTLP ExportTraceServiceRequest (what OTLPSpanExporter serializes) and dropping
it instead of sending it. CPU time is `process_time` (all threads: the export thread's encoding counts).

Same run, interleaved rounds (the machine is shared; medians over rounds):
  untraced            tracing off (no span processor), enqueue without a cause: the baseline (as before)
  cause_tracing_off   tracing off, enqueue(cause=record): must cost the baseline (no span is made)
  traced_cause        tracing on, enqueue(cause=record): a "send <topic>" PRODUCER span per message
  traced_current      tracing on, no cause: the headers carry the current span (no span of its own)
  traced_cause_unsampled  tracing on, cause=record from a trace the head sampler dropped (sampled flag 0):
                      the SDK's default parentbased sampler makes a non-recording span (what
                      OTEL_TRACES_SAMPLER=parentbased_traceidratio buys for the traces it drops)
and per evaluation: Causes.add of one batch of records + caused_span with 33 causes (32 links).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from twin.core import topics
from twin.core.kafka import EventProducer
from twin.core.telemetry import Causes, inject_headers, tracing_enabled
from twin.power.v1 import power_pb2 as ppb

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "otel.json"
MESSAGES = int(os.environ.get("BENCH_OTEL_MESSAGES", "2000"))  # per mode and round
ROUNDS = int(os.environ.get("BENCH_OTEL_ROUNDS", "5"))
CAUSES = 33  # an aggregating span's parent + twin.core.telemetry.MAX_LINKS links


class EncodingExporter(SpanExporter):
    """Encodes every batch as OTLPSpanExporter would, then drops it (no collector in the measurement)."""

    def __init__(self) -> None:
        self.spans = 0
        self.bytes = 0

    def export(self, spans) -> SpanExportResult:
        self.spans += len(spans)
        self.bytes += len(encode_spans(spans).SerializeToString())
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class StubProducer:
    async def send(self, topic, value, key=None, headers=None):
        return None


def _message(i: int) -> ppb.PowerState:
    msg = ppb.PowerState(entity_id=f"r-{i % 1000:04d}", site_id="site-100k", scope=ppb.POWER_SCOPE_RACK,
                         input_power_w=98_000.0 + i, output_power_w=97_000.0 + i)
    msg.state_time.FromNanoseconds(1_700_000_000_000_000_000 + i)
    return msg


def _records(tracer, n: int) -> list[SimpleNamespace]:
    """Consumed records with a creation context each (their own traces)."""
    out = []
    for i in range(n):
        with tracer.start_as_current_span("send telemetry.samples.v1", kind=trace.SpanKind.PRODUCER):
            out.append(SimpleNamespace(headers=inject_headers([("ce_id", str(i).encode())])))
    return out


async def _enqueue_cpu_us(producer: EventProducer, messages, records, *, cause: bool) -> float:
    topic = topics.POWER_STATE
    t0 = time.process_time()
    for i, msg in enumerate(messages):
        await producer.enqueue(topic, msg.entity_id, msg, ce_id=f"id-{i}", cause=records[i] if cause else None)
    return (time.process_time() - t0) / len(messages) * 1e6


def _flush_cpu_us(provider: TracerProvider, n: int) -> float:
    t0 = time.process_time()
    provider.force_flush()
    return (time.process_time() - t0) / n * 1e6


async def run() -> dict:
    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("bench.otel")
    producer = EventProducer("127.0.0.1:1", source="bench")
    producer._producer = StubProducer()
    messages = [_message(i) for i in range(MESSAGES)]
    records = _records(tracer, MESSAGES)
    # the same inputs from a trace the head sampler dropped (flags 00): ParentBased keeps it dropped downstream
    unsampled = [SimpleNamespace(headers=[(k, v[:-2] + b"00" if k == "traceparent" else v) for k, v in r.headers])
                 for r in records]
    assert not tracing_enabled()

    off: dict[str, list[float]] = {"untraced": [], "cause_tracing_off": []}
    for _ in range(ROUNDS):
        off["untraced"].append(await _enqueue_cpu_us(producer, messages, records, cause=False))
        off["cause_tracing_off"].append(await _enqueue_cpu_us(producer, messages, records, cause=True))

    exporter = EncodingExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    assert tracing_enabled()
    on: dict[str, list[float]] = {"traced_cause": [], "traced_current": [], "traced_cause_unsampled": []}
    export: list[float] = []  # of traced_cause: the export thread's share (encoding), per message
    for _ in range(ROUNDS):
        provider.force_flush()
        with tracer.start_as_current_span("process telemetry.samples.v1", kind=trace.SpanKind.CONSUMER):
            us = await _enqueue_cpu_us(producer, messages, records, cause=True)
        export.append(_flush_cpu_us(provider, MESSAGES))
        on["traced_cause"].append(us + export[-1])
        with tracer.start_as_current_span("process telemetry.samples.v1", kind=trace.SpanKind.CONSUMER):
            us = await _enqueue_cpu_us(producer, messages, records, cause=False)
        on["traced_current"].append(us + _flush_cpu_us(provider, MESSAGES))
        us = await _enqueue_cpu_us(producer, messages, unsampled, cause=True)
        on["traced_cause_unsampled"].append(us + _flush_cpu_us(provider, MESSAGES))

    evaluation = []
    batch = records[:CAUSES]
    for _ in range(ROUNDS * 20):
        t0 = time.process_time()
        causes = Causes()
        causes.add(batch)
        with causes.span(tracer, "cooling evaluate"):
            pass
        evaluation.append((time.process_time() - t0) * 1e6)
    provider.force_flush()
    provider.shutdown()

    med = {k: statistics.median(v) for k, v in {**off, **on}.items()}
    base = med["untraced"]
    return {
        "messages_per_round": MESSAGES, "rounds": ROUNDS,
        "us_per_message": {k: round(v, 2) for k, v in med.items()},
        "us_per_message_rounds": {k: [round(x, 2) for x in v] for k, v in {**off, **on}.items()},
        "ratio_vs_untraced": {k: round(v / base, 3) for k, v in med.items()},
        "traced_cause_extra_us": round(med["traced_cause"] - base, 2),
        "traced_cause_flush_us": round(statistics.median(export), 2),
        "evaluation_span_us": round(statistics.median(evaluation), 1),
        "evaluation_causes": CAUSES,
        "spans_exported": exporter.spans, "otlp_bytes_per_span": round(exporter.bytes / max(exporter.spans, 1), 1),
        "load_average_1m": os.getloadavg()[0], "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def main() -> dict:
    result = asyncio.run(run())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    u, r = result["us_per_message"], result["ratio_vs_untraced"]
    print(f"per message (CPU, median of {ROUNDS} x {MESSAGES}): " + ", ".join(
        f"{k} {u[k]:.1f} us ({r[k]:.2f}x)" for k in u))
    print(f"aggregating span with {CAUSES} causes: {result['evaluation_span_us']:.0f} us; "
          f"{result['otlp_bytes_per_span']:.0f} OTLP bytes per span; wrote {RESULTS}")
    return result


if __name__ == "__main__":
    main()
