"""W3C trace context from the feeds into ingest (README "Observability"):

- ingest's Redfish HTTP receiver (real aiohttp server, real HTTP client) continues a caller's `traceparent`
  header: the batches it publishes through the kit's EventProducer carry the caller's trace, from a SERVER
  span "POST <route>" while spans are recorded, or the caller's own context unchanged while they are not;
- the facility simulator's publishers send each record from a PRODUCER span "send <topic>" (messaging
  semantic conventions) whose context is the record's `traceparent`, and add nothing while tracing is off.

Spans go to an in-memory exporter on the global SDK provider (as tests/unit/test_core_trace_causes.py does);
"tracing off" empties that provider's span processors for one test (monkeypatch), which is exactly what
`tracing_enabled()` reads. The EventProducer's aiokafka producer is a stub keeping what it is given: the
record (value, key, headers) is the one the broker would get."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_ingest_http_api import AUTH, RACKS, T0, TOKEN, feed

from twin.core import topics
from twin.core.clock import FixedClock
from twin.core.envelope import header
from twin.core.kafka import EventProducer
from twin.core.telemetry import tracing_enabled
from twin.facility_sim.adapters.publisher import KafkaPublisher, MemoryPublisher
from twin.facility_sim.app import FacilitySim, SimConfig
from twin.ingest.adapters.http_api import METRIC_REPORTS_PATH, make_http_app

# a caller's span context (W3C Trace Context §3.2 example ids), sampled
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


class StubKafka:
    """What aiokafka's producer is handed: (topic, key, value, headers); every send is acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, list]] = []

    async def send(self, topic, value=None, key=None, headers=None):
        self.sent.append((topic, key, value, list(headers or ())))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def start(self):
        return None

    async def stop(self):
        return None

    async def flush(self):
        return None


@pytest.fixture
def tracing_off(spans, monkeypatch):
    """The global provider with no span processor (what a service without an exporter runs)."""
    monkeypatch.setattr(trace.get_tracer_provider()._active_span_processor, "_span_processors", ())
    assert not tracing_enabled()


async def _stubbed(owner) -> StubKafka:
    """Replace `owner._producer` (an aiokafka producer never started: closed first, no broker) with a stub."""
    await owner._producer.stop()
    owner._producer = StubKafka()
    return owner._producer


def _ids(headers) -> tuple[str, str] | None:
    value = header(headers, "traceparent")
    if value is None:
        return None
    _, trace_id, span_id, _ = value.decode().split("-")
    return trace_id, span_id


async def _post(extra_headers: dict[str, str]) -> tuple[int, StubKafka]:
    """POST a 3-batch Redfish MetricReport to a receiver publishing through a real EventProducer."""
    producer = EventProducer("127.0.0.1:1", source="ingest-tests")
    kafka = await _stubbed(producer)

    async def publish(batch) -> None:  # as twin.ingest.app wires it
        await producer.send(topics.FACILITY_TELEMETRY, batch.rack_id or batch.site_id, batch)

    async def dead_letter(raw, reason, source) -> None:
        raise AssertionError(f"nothing should be dead-lettered: {reason}")

    app = make_http_app(publish=publish, dead_letter=dead_letter, token=TOKEN, rack_of_resource=RACKS,
                        clock=FixedClock(T0), site_id="site-a")
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        async with session.post(str(server.make_url(METRIC_REPORTS_PATH)),
                                data=feed("telemetry-metricreport-platformpowerusage.json"),
                                headers={**AUTH, "Content-Type": "application/json", **extra_headers}) as resp:
            return resp.status, kafka


def _server_spans(exporter: InMemorySpanExporter):
    return [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER]


async def test_a_traced_callers_trace_continues_through_the_http_receiver(spans):
    status, kafka = await _post({"traceparent": CALLER, "tracestate": "vendor=abc"})
    assert status == 202 and len(kafka.sent) == 3
    (server,) = _server_spans(spans)
    assert server.name == f"POST {METRIC_REPORTS_PATH}"
    assert f"{server.context.trace_id:032x}" == CALLER_TRACE
    assert server.parent.is_remote and f"{server.parent.span_id:016x}" == CALLER_SPAN
    assert server.context.trace_state.get("vendor") == "abc"
    assert dict(server.attributes) == {"http.request.method": "POST", "http.route": METRIC_REPORTS_PATH,
                                       "url.path": METRIC_REPORTS_PATH, "http.response.status_code": 202}
    # every published batch carries the SERVER span's context: ingest's send span continues the caller's trace
    assert {_ids(h) for _, _, _, h in kafka.sent} == {(CALLER_TRACE, f"{server.context.span_id:016x}")}
    assert {header(h, "tracestate") for _, _, _, h in kafka.sent} == {b"vendor=abc"}


async def test_without_a_traceparent_the_receivers_span_starts_the_trace(spans):
    status, kafka = await _post({})
    assert status == 202
    (server,) = _server_spans(spans)
    assert server.parent is None
    assert {_ids(h) for _, _, _, h in kafka.sent} == {(f"{server.context.trace_id:032x}",
                                                      f"{server.context.span_id:016x}")}


async def test_tracing_off_passes_the_callers_context_on_unchanged(tracing_off, spans):
    status, kafka = await _post({"traceparent": CALLER})
    assert status == 202
    assert {header(h, "traceparent") for _, _, _, h in kafka.sent} == {CALLER.encode()}
    assert spans.get_finished_spans() == ()


async def test_tracing_off_and_no_traceparent_adds_none(tracing_off, spans):
    status, kafka = await _post({})
    assert status == 202 and len(kafka.sent) == 3
    assert all(header(h, "traceparent") is None for _, _, _, h in kafka.sent)


# -- the facility simulator -------------------------------------------------------------------------


def _sim(publisher) -> FacilitySim:
    return FacilitySim(SimConfig(facility="dgx-h100-su", racks=2, rate_hz=1.0, seed=7, bad_fraction=0.0), publisher,
                       FixedClock(datetime(2026, 1, 2, tzinfo=UTC)))


async def test_the_simulator_sends_each_tick_batch_from_a_producer_span(spans):
    publisher = MemoryPublisher()
    sim = _sim(publisher)
    await sim.tick(datetime(2026, 1, 2, tzinfo=UTC))
    telemetry = [r for r in publisher.records if r[0] == topics.FACILITY_TELEMETRY.name]
    assert len(telemetry) >= 2  # one RackTelemetryBatch per rack (+ equipment)
    sent = {f"{s.context.span_id:016x}": s for s in spans.get_finished_spans() if s.kind == trace.SpanKind.PRODUCER}
    for topic, key, _, headers in publisher.records:
        trace_id, span_id = _ids(headers)
        span = sent[span_id]
        assert f"{span.context.trace_id:032x}" == trace_id and span.parent is None  # the simulator starts the trace
        assert span.name == f"send {topic}"
        assert dict(span.attributes) == {
            "messaging.system": "kafka", "messaging.destination.name": topic, "messaging.operation.type": "send",
            "messaging.operation.name": "send", "messaging.kafka.message.key": key.decode(),
            "messaging.message.id": header(headers, "ce_id").decode()}
    distinct = {(key, value) for _, key, value, _ in publisher.records}  # the fault injector is off: no duplicates
    assert len({_ids(h) for *_, h in publisher.records}) == len(publisher.records) == len(distinct), \
        "one span per record"


async def test_the_kafka_publisher_sends_the_span_context_in_the_record(spans):
    publisher = KafkaPublisher("127.0.0.1:1")
    kafka = await _stubbed(publisher)
    headers = [("ce_id", b"id-1"), ("ce_type", b"t")]
    await (await publisher.send("facility.telemetry.v1", b"a-0000", b"v", headers))
    (span,) = [s for s in spans.get_finished_spans() if s.kind == trace.SpanKind.PRODUCER]
    (_, key, _, sent_headers), = kafka.sent
    assert key == b"a-0000" and span.attributes["messaging.message.id"] == "id-1"
    assert _ids(sent_headers) == (f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}")
    # the same headers again (the fault injector's duplicate): the same record, no second span
    await (await publisher.send("facility.telemetry.v1", b"a-0000", b"v", headers))
    assert kafka.sent[1][3] == sent_headers
    assert len([s for s in spans.get_finished_spans() if s.kind == trace.SpanKind.PRODUCER]) == 1


async def test_the_simulator_adds_no_trace_context_while_tracing_is_off(tracing_off, spans):
    publisher = MemoryPublisher()
    await _sim(publisher).tick(datetime(2026, 1, 2, tzinfo=UTC))
    assert publisher.records and all(header(h, "traceparent") is None for *_, h in publisher.records)
    kafka_publisher = KafkaPublisher("127.0.0.1:1")
    kafka = await _stubbed(kafka_publisher)
    await kafka_publisher.send("facility.telemetry.v1", b"a-0000", b"v", [("ce_id", b"x")])
    assert kafka.sent[0][3] == [("ce_id", b"x")]
    assert spans.get_finished_spans() == ()
