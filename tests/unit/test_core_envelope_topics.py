"""Envelope headers, the topic registry, trace-context headers and telemetry setup."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from twin.core import topics
from twin.core.envelope import Envelope, EnvelopeError, header, new_envelope
from twin.core.kafka import default_is_transient, dlq_headers
from twin.core.telemetry import extract_context, inject_headers, setup_telemetry, span_context_from_headers


def test_envelope_round_trip_through_headers():
    env = new_envelope("twin.telemetry.v1.RackTelemetryBatch", "ingest", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    back = Envelope.from_headers(env.to_headers())
    assert back == env
    assert header(env.to_headers(), "content-type") == b"application/protobuf"


def test_envelope_errors_name_the_problem():
    with pytest.raises(EnvelopeError, match="missing CloudEvents headers: ce_time"):
        Envelope.from_headers([("ce_id", b"1"), ("ce_type", b"t"), ("ce_source", b"s")])
    with pytest.raises(EnvelopeError, match="malformed"):
        Envelope.from_headers([("ce_id", b"1"), ("ce_type", b"t"), ("ce_source", b"s"), ("ce_time", b"yesterday")])


def test_registry_names_types_and_dlqs():
    assert len({t.name for t in topics.ALL}) == len(topics.ALL)
    for t in topics.ALL:
        parts = t.name.split(".")
        assert len(parts) == 3 and parts[2].startswith("v"), t.name
        assert t.dlq == t.name + ".dlq"
        assert t.ce_type == t.message_type.DESCRIPTOR.full_name
    assert topics.all_topic_names(include_dlq=True)[-1].endswith(".dlq")


def test_dlq_headers_keep_originals_and_add_context():
    original = [("ce_id", b"x"), ("traceparent", b"00-abc")]
    out = dlq_headers(original, "decode: bad", "facility.telemetry.v1", 3, 42,
                      now=datetime(2025, 1, 1, tzinfo=UTC))
    assert out[:2] == original
    assert dict(out[2:]) == {"dlq_reason": b"decode: bad", "dlq_source_topic": b"facility.telemetry.v1",
                             "dlq_partition": b"3", "dlq_offset": b"42", "dlq_time": b"2025-01-01T00:00:00+00:00"}


def test_trace_context_round_trips_through_kafka_headers():
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("s") as span:
        headers = inject_headers([("ce_id", b"1")])
    assert header(headers, "ce_id") == b"1"
    assert header(headers, "traceparent").decode().startswith("00-")
    ctx = span_context_from_headers(headers)
    assert ctx is not None and ctx.trace_id == span.get_span_context().trace_id and ctx.is_remote
    assert span_context_from_headers([("ce_id", b"1")]) is None
    assert trace.get_current_span(extract_context([])).get_span_context().is_valid is False


def test_setup_telemetry_defaults_to_no_exporter_and_reads_env():
    tel = setup_telemetry("ingest", environ={}, set_global=False)
    assert tel.exporters == {"traces": "none", "metrics": "none"}
    assert tel.tracer_provider.resource.attributes["service.name"] == "ingest"
    assert tel.tracer_provider.resource.attributes["service.instance.id"]
    tel.shutdown()
    tel = setup_telemetry("ingest", environ={"OTEL_SERVICE_NAME": "ingest-2", "OTEL_TRACES_EXPORTER": "console",
                                             "OTEL_METRICS_EXPORTER": "none"}, set_global=False)
    assert tel.service_name == "ingest-2" and tel.exporters["traces"] == "console"
    tel.shutdown()
    assert setup_telemetry("x", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"},
                           set_global=False).exporters == {"traces": "otlp", "metrics": "otlp"}
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER"):
        setup_telemetry("x", environ={"OTEL_TRACES_EXPORTER": "zipkin"}, set_global=False)


def test_transient_error_classification():
    import psycopg

    assert default_is_transient(ConnectionError("refused"))
    assert default_is_transient(psycopg.OperationalError("server closed the connection"))
    assert not default_is_transient(ValueError("bad data"))
    assert not default_is_transient(psycopg.errors.NumericValueOutOfRange("out of range"))
