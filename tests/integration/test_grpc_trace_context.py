"""Trace context across gRPC (README "Observability"): a call made through a twin.core.grpc_client channel inside
a span reaches the kit's server (twin.core.grpc_server) with a W3C `traceparent`, and the server's SERVER span
is a child of the client's CLIENT span in the same trace. Real gRPC over loopback; spans in in-memory exporters.
Untraced calls (no span processor) carry no trace metadata and make no span."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from twin.core import grpc_client
from twin.core.grpc_client import TraceContextClientInterceptor, server_attributes
from twin.core.grpc_server import GrpcOptions, GrpcServer, RpcHandler
from twin.core.rpc import InvalidArgument
from twin.core.telemetry import setup_telemetry
from twin.fabric.v1 import fabric_pb2 as pb
from twin.fabric.v1 import fabric_pb2_grpc as pb_grpc

SERVICE = "twin.fabric.v1.FabricSimulationService"


class Servicer(pb_grpc.FabricSimulationServiceServicer):
    """EstimateCollective: INVALID_ARGUMENT for size 0, else OK; keeps every call's invocation metadata."""

    def __init__(self, rpc: RpcHandler) -> None:
        self.rpc = rpc
        self.metadata: list[dict[str, str]] = []

    async def EstimateCollective(self, request, context):  # noqa: N802 - the proto's method name
        self.metadata.append({k: v for k, v in context.invocation_metadata()})

        def work(deadline):
            if request.size_bytes == 0:
                raise InvalidArgument("size_bytes", "must be > 0")
            return pb.EstimateCollectiveResponse(n_ranks=8)

        return await self.rpc.run("EstimateCollective", context, work)


def _provider(recording: bool) -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    if recording:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.fixture
async def served():
    """(server, servicer, server-side exporter): the kit's server recording its spans in memory."""
    provider, exporter = _provider(recording=True)
    servicer = Servicer(RpcHandler(SERVICE, tracer_provider=provider))
    server = GrpcServer(SERVICE, lambda s: pb_grpc.add_FabricSimulationServiceServicer_to_server(servicer, s),
                        GrpcOptions(port=0))
    await server.start()
    try:
        yield server, servicer, exporter
    finally:
        await server.stop(0)


def _only(exporter: InMemorySpanExporter, kind: trace.SpanKind):
    spans = [s for s in exporter.get_finished_spans() if s.kind == kind]
    assert len(spans) == 1, [(s.name, s.kind) for s in exporter.get_finished_spans()]
    return spans[0]


async def _ended(exporter: InMemorySpanExporter, kind: trace.SpanKind, timeout_s: float = 10.0):
    """The one span of `kind`, once it has ended: grpc.aio runs a client interceptor in a task of its own, and the
    caller can see a failed call's error before that task has ended its span (bounded wait, polled)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not any(s.kind == kind for s in exporter.get_finished_spans()) and loop.time() < deadline:
        await asyncio.sleep(0.01)
    return _only(exporter, kind)


async def test_server_span_is_a_child_of_the_client_span_in_the_callers_trace(served):
    server, servicer, server_spans = served
    client_provider, client_spans = _provider(recording=True)
    interceptor = TraceContextClientInterceptor(server.address, tracer_provider=client_provider)
    tracer = client_provider.get_tracer("tests")
    async with grpc.aio.insecure_channel(server.address, interceptors=[interceptor]) as ch:
        stub = pb_grpc.FabricSimulationServiceStub(ch)
        with tracer.start_as_current_span("jobs refresh") as outer:
            resp = await stub.EstimateCollective(pb.EstimateCollectiveRequest(size_bytes=8), timeout=5,
                                                 metadata=(("authorization", "Bearer x"),))
    assert resp.n_ranks == 8
    client = await _ended(client_spans, trace.SpanKind.CLIENT)
    srv = await _ended(server_spans, trace.SpanKind.SERVER)
    assert client.parent.span_id == outer.get_span_context().span_id
    assert client.context.trace_id == outer.get_span_context().trace_id
    assert srv.context.trace_id == client.context.trace_id
    assert srv.parent is not None and srv.parent.span_id == client.context.span_id and srv.parent.is_remote
    assert client.name == srv.name == f"{SERVICE}/EstimateCollective"
    assert dict(client.attributes) == {"rpc.system": "grpc", "rpc.service": SERVICE,
                                       "rpc.method": "EstimateCollective", "server.address": "127.0.0.1",
                                       "server.port": server.port, "rpc.grpc.status_code": 0}
    sent = servicer.metadata[-1]
    assert sent["traceparent"] == (f"00-{client.context.trace_id:032x}-{client.context.span_id:016x}"
                                   f"-{int(client.context.trace_flags):02x}")
    assert sent["authorization"] == "Bearer x", "the caller's own metadata goes out unchanged"


async def test_a_failed_call_ends_its_client_span_with_the_status_code(served):
    server, _, server_spans = served
    client_provider, client_spans = _provider(recording=True)
    interceptor = TraceContextClientInterceptor(f"dns:///{server.address}", tracer_provider=client_provider)
    async with grpc.aio.insecure_channel(server.address, interceptors=[interceptor]) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.FabricSimulationServiceStub(ch).EstimateCollective(
                pb.EstimateCollectiveRequest(size_bytes=0), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    client = await _ended(client_spans, trace.SpanKind.CLIENT)
    code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert client.attributes["rpc.grpc.status_code"] == code
    assert client.status.status_code == trace.StatusCode.ERROR and "INVALID_ARGUMENT" in client.status.description
    srv = await _ended(server_spans, trace.SpanKind.SERVER)
    assert srv.parent.span_id == client.context.span_id and srv.attributes["rpc.grpc.status_code"] == code


async def test_untraced_calls_send_no_trace_metadata_and_make_no_span(served):
    server, servicer, server_spans = served
    client_provider, client_spans = _provider(recording=False)  # an SDK provider nothing records from
    interceptor = TraceContextClientInterceptor(server.address, tracer_provider=client_provider)
    async with grpc.aio.insecure_channel(server.address, interceptors=[interceptor]) as ch:
        with client_provider.get_tracer("tests").start_as_current_span("not recorded"):
            resp = await pb_grpc.FabricSimulationServiceStub(ch).EstimateCollective(
                pb.EstimateCollectiveRequest(size_bytes=8), timeout=5)
    assert resp.n_ranks == 8
    assert "traceparent" not in servicer.metadata[-1] and "tracestate" not in servicer.metadata[-1]
    assert client_spans.get_finished_spans() == ()
    srv = await _ended(server_spans, trace.SpanKind.SERVER)
    assert srv.parent is None, "no context sent: the server span starts its own trace"


async def test_the_kits_channel_traces_with_the_global_provider(served):
    """`grpc_client.channel` (what the jobs twin uses to ask fabric) follows the global provider's processors."""
    server, servicer, server_spans = served
    setup_telemetry("twin-tests")  # the global SDK provider (no exporter) unless another test set it first
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exported = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    async with grpc_client.channel(server.address) as ch:
        with trace.get_tracer("tests").start_as_current_span("caller") as outer:
            await pb_grpc.FabricSimulationServiceStub(ch).EstimateCollective(
                pb.EstimateCollectiveRequest(size_bytes=8), timeout=5)
    client = await _ended(exported, trace.SpanKind.CLIENT)
    assert client.parent.span_id == outer.get_span_context().span_id
    srv = await _ended(server_spans, trace.SpanKind.SERVER)
    assert srv.parent.span_id == client.context.span_id and srv.context.trace_id == outer.get_span_context().trace_id


@pytest.mark.parametrize(("target", "attrs"), [
    ("fabric:50053", {"server.address": "fabric", "server.port": 50053}),
    ("dns:///fabric.twin.svc:443", {"server.address": "fabric.twin.svc", "server.port": 443}),
    ("[::1]:50051", {"server.address": "::1", "server.port": 50051}),
    ("fabric", {"server.address": "fabric"}),
    ("unix:///run/fabric.sock", {"server.address": "unix:///run/fabric.sock"}),
])
def test_server_attributes_of_channel_targets(target, attrs):
    assert server_attributes(target) == attrs
