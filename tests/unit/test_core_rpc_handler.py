"""twin.core.grpc_server.RpcHandler: the SERVER span and the rpc.server.call.duration metric are kept
whenever something records them (span processor / metric reader), with the OTel RPC attributes and the
status code, and are skipped (no span made) while nothing would record them."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from twin.core.grpc_server import RpcHandler
from twin.core.rpc import InvalidArgument

SERVICE = "twin.test.v1.TestService"


class Aborted(Exception):
    pass


class FakeContext:
    """The two ServicerContext methods RpcHandler uses; abort raises like grpc.aio's does."""

    def __init__(self, remaining: float | None = None) -> None:
        self.remaining = remaining
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def time_remaining(self) -> float | None:
        return self.remaining

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise Aborted(details)


def _points(reader: InMemoryMetricReader) -> list[tuple[dict, int]]:
    data = reader.get_metrics_data()
    out = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "rpc.server.call.duration":
                    assert metric.unit == "s"
                    out += [(dict(p.attributes), p.count) for p in metric.data.data_points]
    return out


def _bad(deadline):
    raise InvalidArgument("size_bytes", "must be > 0")


def test_span_and_duration_recorded_with_status_codes():
    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    rpc = RpcHandler(SERVICE, tracer_provider=tp, meter_provider=MeterProvider(metric_readers=[reader]))
    seen = []

    def work(deadline):
        seen.append(trace.get_current_span())
        return "answer"

    async def main():
        assert await rpc.run("Estimate", FakeContext(5.0), work) == "answer"
        assert await rpc.run("Estimate", FakeContext(), work) == "answer"
        ctx = FakeContext()
        with pytest.raises(Aborted):
            await rpc.run("Estimate", ctx, _bad)
        assert ctx.aborted == (grpc.StatusCode.INVALID_ARGUMENT, "size_bytes: must be > 0")

    asyncio.run(main())
    finished = spans.get_finished_spans()
    assert [s.name for s in finished] == [f"{SERVICE}/Estimate"] * 3
    assert all(s.kind is trace.SpanKind.SERVER for s in finished)
    assert seen[0].get_span_context() == finished[0].get_span_context(), "the work runs inside the SERVER span"
    ok, _, bad = finished
    assert dict(ok.attributes) == {"rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": "Estimate",
                                   "rpc.grpc.status_code": 0}
    assert bad.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert bad.status.status_code is trace.StatusCode.ERROR and "size_bytes: must be > 0" in bad.status.description
    assert ok.status.status_code is trace.StatusCode.UNSET
    points = sorted(_points(reader), key=lambda p: p[0]["rpc.grpc.status_code"])
    base = {"rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": "Estimate"}
    assert points == [({**base, "rpc.grpc.status_code": 0}, 2), ({**base, "rpc.grpc.status_code": 3}, 1)]


def test_no_span_while_nothing_records_and_a_processor_added_later_counts():
    tp = TracerProvider()  # no processor: a span would be recorded by nothing
    rpc = RpcHandler(SERVICE, tracer_provider=tp, meter_provider=MeterProvider())
    seen = []

    def work(deadline):
        seen.append(trace.get_current_span())
        return 1

    asyncio.run(rpc.run("Estimate", FakeContext(), work))
    assert not seen[-1].is_recording() and not seen[-1].get_span_context().is_valid, "no span was made"
    spans = InMemorySpanExporter()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    asyncio.run(rpc.run("Estimate", FakeContext(), work))
    finished = spans.get_finished_spans()
    assert [s.name for s in finished] == [f"{SERVICE}/Estimate"]
    assert seen[-1].get_span_context() == finished[0].get_span_context()


def test_errors_are_mapped_without_a_recording_span():
    rpc = RpcHandler(SERVICE, tracer_provider=TracerProvider(), meter_provider=MeterProvider())
    ctx = FakeContext()

    def broken(deadline):
        raise RuntimeError("secret detail")

    with pytest.raises(Aborted):
        asyncio.run(rpc.run("Estimate", ctx, broken))
    code, details = ctx.aborted
    assert code is grpc.StatusCode.INTERNAL and "secret" not in details
