"""Trace context through the twins (twin.core.telemetry Causes / caused_span, twin.core.kafka send spans):
an output stays in its cause's trace (parent), other inputs and the consumer's batch span are links, and the
spans carry the OTel messaging semantic-convention attributes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from opentelemetry import trace

from twin.core import topics
from twin.core.kafka import EventProducer, send_span
from twin.core.telemetry import (
    MAX_LINKS,
    Causes,
    caused_span,
    inject_headers,
    span_context_from_headers,
    tracing_enabled,
)
from twin.telemetry.v1 import telemetry_pb2 as tpb


def _record(tracer, name: str):
    """A consumed record whose creation context is a finished span `name` (its own trace)."""
    with tracer.start_as_current_span(name) as span:
        headers = inject_headers([("ce_id", b"x")])
    return SimpleNamespace(headers=headers), span.get_span_context()


def test_caused_span_is_in_the_newest_cause_trace_and_links_the_others(spans):
    assert tracing_enabled()
    tracer = trace.get_tracer("tests")
    inputs = [_record(tracer, f"send in-{i}") for i in range(3)]
    causes = Causes()
    causes.add([rec for rec, _ in inputs] + [SimpleNamespace(headers=[("ce_id", b"no-trace")])])
    with tracer.start_as_current_span("process t") as batch:
        with causes.span(tracer, "evaluate", attributes={"twin.site_id": "s"}) as span:
            pass
    assert causes.take() == ([], 0), "take() starts over"
    newest = inputs[-1][1]
    assert span.parent.span_id == newest.span_id and span.get_span_context().trace_id == newest.trace_id
    linked = [(link.context.span_id, link.attributes["twin.link"]) for link in span.links]
    assert linked == [(inputs[0][1].span_id, "cause"), (inputs[1][1].span_id, "cause"),
                      (batch.get_span_context().span_id, "batch")]
    assert span.attributes["twin.causes"] == 3 and span.attributes["twin.site_id"] == "s"
    assert "twin.causes.dropped" not in span.attributes


def test_causes_keep_the_newest_and_count_the_dropped(spans):
    tracer = trace.get_tracer("tests")
    inputs = [_record(tracer, f"send in-{i}") for i in range(MAX_LINKS + 5)]
    causes = Causes()
    causes.add([rec for rec, _ in inputs])
    kept, dropped = causes.take()
    assert dropped == 4 and len(kept) == MAX_LINKS + 1
    assert [c.span_id for c in kept] == [ctx.span_id for _, ctx in inputs[4:]]
    with caused_span(tracer, "evaluate", kept, dropped=dropped) as span:
        pass
    assert span.parent.span_id == inputs[-1][1].span_id
    assert len(span.links) == MAX_LINKS and span.attributes["twin.causes.dropped"] == 4


def test_caused_span_without_causes_is_a_child_of_the_current_span(spans):
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("tick") as tick:
        with caused_span(tracer, "evaluate", []) as span:
            pass
    assert span.parent.span_id == tick.get_span_context().span_id and not span.links


def test_send_span_follows_its_cause_and_carries_the_messaging_attributes(spans):
    tracer = trace.get_tracer("tests")
    rec, cause = _record(tracer, "send facility.telemetry.v1")
    with tracer.start_as_current_span("process facility.telemetry.v1") as batch:
        with send_span("telemetry.samples.v1", "a-0000", "ce-1", rec) as span:
            headers = inject_headers([])
    assert span.kind == trace.SpanKind.PRODUCER and span.name == "send telemetry.samples.v1"
    assert span.parent.span_id == cause.span_id and span.get_span_context().trace_id == cause.trace_id
    assert [link.context.span_id for link in span.links] == [batch.get_span_context().span_id]
    assert dict(span.attributes) == {
        "messaging.system": "kafka", "messaging.destination.name": "telemetry.samples.v1",
        "messaging.operation.type": "send", "messaging.operation.name": "send",
        "messaging.kafka.message.key": "a-0000", "messaging.message.id": "ce-1"}
    # what the headers carry is the send span: the next consumer's parent
    assert span_context_from_headers(headers).span_id == span.get_span_context().span_id
    # a cause without a trace context: the send span is a child of the current span
    with tracer.start_as_current_span("tick") as tick:
        with send_span("x", None, None, SimpleNamespace(headers=[])) as orphan:
            pass
    assert orphan.parent.span_id == tick.get_span_context().span_id and "messaging.kafka.message.key" not in \
        orphan.attributes


async def test_producer_sends_from_a_span_in_the_cause_trace(spans):
    tracer = trace.get_tracer("tests")
    rec, cause = _record(tracer, "send facility.telemetry.v1")
    producer = EventProducer("127.0.0.1:1", source="tests")
    sent = []

    class Fake:
        async def send(self, topic, value, key=None, headers=None):
            sent.append((topic, key, headers))
            return "future"

    producer._producer = Fake()
    msg = tpb.TelemetrySamples()
    assert await producer.enqueue(topics.TELEMETRY_SAMPLES, "a-0000", msg, ce_id="id-1", cause=rec) == "future"
    assert await producer.enqueue(topics.TELEMETRY_SAMPLES, "a-0001", msg, ce_id="id-2") == "future"
    first, second = (span_context_from_headers(h) for _, _, h in sent)
    send = [s for s in spans.get_finished_spans() if s.name == "send telemetry.samples.v1"]
    assert len(send) == 1, "only the message with a cause gets its own span"
    assert first.span_id == send[0].context.span_id and first.trace_id == cause.trace_id
    assert send[0].attributes["messaging.message.id"] == "id-1"
    assert second is None, "no current span, no cause: no trace context (as before)"
    assert dict(sent[0][2])["ce_id"] == b"id-1"


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize("headers", [
    [("traceparent", f"00-{TRACE}-{SPAN}-01".encode())],
    [("traceparent", f"00-{TRACE}-{SPAN}-00".encode())],
    [("traceparent", f"00-{TRACE}-{SPAN}-01".encode()), ("tracestate", b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")],
    [("traceparent", f"00-{TRACE}-{SPAN}-01".encode()), ("traceparent", f"00-{'1' * 32}-{SPAN}-01".encode())],
    [("traceparent", f"01-{TRACE}-{SPAN}-01-future".encode())],      # a later version may add fields
    [("traceparent", f"00-{TRACE}-{SPAN}-01-extra".encode())],       # version 00 may not
    [("traceparent", f"ff-{TRACE}-{SPAN}-01".encode())],
    [("traceparent", f"00-{'0' * 32}-{SPAN}-01".encode())],
    [("traceparent", f"00-{TRACE}-{'0' * 16}-01".encode())],
    [("traceparent", f"00-{TRACE.upper()}-{SPAN}-01".encode())],
    [("traceparent", b"00-garbage")],
    [("traceparent", b"")],
    [("ce_id", b"1")],
    [],
])
def test_traceparent_parser_agrees_with_the_w3c_propagator(headers):
    from twin.core.telemetry import extract_context

    want = trace.get_current_span(extract_context(headers)).get_span_context()
    got = span_context_from_headers(headers)
    if not want.is_valid:
        assert got is None
    else:
        assert got is not None and got.is_remote
        assert (got.trace_id, got.span_id, got.trace_flags, dict(got.trace_state or {})) == \
            (want.trace_id, want.span_id, want.trace_flags, dict(want.trace_state or {}))


def test_send_span_passes_an_unsampled_trace_on_without_a_span(spans):
    tracer = trace.get_tracer("tests")
    headers = [("traceparent", f"00-{TRACE}-{SPAN}-00".encode())]
    before = len(spans.get_finished_spans())
    with send_span("t", "k", "id", SimpleNamespace(headers=headers)):
        out = inject_headers([])
    with tracer.start_as_current_span("x"):
        pass
    assert len(spans.get_finished_spans()) == before + 1, "no span recorded for the dropped trace"
    assert dict(out)["traceparent"] == f"00-{TRACE}-{SPAN}-00".encode(), "the head sampler's decision goes on"


def test_caused_span_makes_no_span_while_tracing_is_off(spans, monkeypatch):
    import twin.core.telemetry as telemetry

    tracer = trace.get_tracer("tests")
    rec, cause = _record(tracer, "send in")
    before = len(spans.get_finished_spans())
    monkeypatch.setattr(telemetry, "tracing_enabled", lambda: False)
    causes = Causes()
    causes.add([rec])
    assert causes.take() == ([], 0), "nothing collected while tracing is off"
    with tracer.start_as_current_span("process t") as batch:
        with caused_span(tracer, "evaluate", [cause]) as span:
            assert span is batch and trace.get_current_span() is batch
    assert [s.name for s in spans.get_finished_spans()[before:]] == ["process t"]
