"""twin.core.grpc_server over real loopback gRPC: token, TLS and mutual TLS refuse and accept clients;
health stays open; reflection answers under v1 and v1alpha; errors map to status codes."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from twin.core.grpc_server import REFLECTION_V1, GrpcOptions, GrpcServer, RpcHandler
from twin.core.rpc import InvalidArgument, NotFound
from twin.fabric.v1 import fabric_pb2 as pb
from twin.fabric.v1 import fabric_pb2_grpc as pb_grpc

SERVICE = "twin.fabric.v1.FabricSimulationService"
TOKEN = "s3cret-token"



class Servicer(pb_grpc.FabricSimulationServiceServicer):
    """Answers by size: 0 → INVALID_ARGUMENT, 1 → NOT_FOUND, 2 → an unexpected error, else OK."""

    rpc = RpcHandler(SERVICE)

    async def EstimateCollective(self, request, context):
        def work(deadline):
            if request.size_bytes == 0:
                raise InvalidArgument("size_bytes", "must be > 0")
            if request.size_bytes == 1:
                raise NotFound("placement.job_id", "no such job")
            if request.size_bytes == 2:
                raise KeyError("bug")
            return pb.EstimateCollectiveResponse(n_ranks=8)

        return await self.rpc.run("EstimateCollective", context, work)


async def _serve(options: GrpcOptions) -> GrpcServer:
    server = GrpcServer(SERVICE, lambda s: pb_grpc.add_FabricSimulationServiceServicer_to_server(Servicer(), s),
                        options)
    await server.start()
    return server


async def _call(channel, metadata=()):
    stub = pb_grpc.FabricSimulationServiceStub(channel)
    return await stub.EstimateCollective(pb.EstimateCollectiveRequest(size_bytes=8), timeout=5, metadata=metadata)


async def test_token_refuses_missing_and_wrong_tokens_and_accepts_the_right_one():
    server = await _serve(GrpcOptions(port=0, token=TOKEN))
    try:
        async with grpc.aio.insecure_channel(server.address) as ch:
            for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await _call(ch, metadata)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            ok = await _call(ch, (("authorization", f"Bearer {TOKEN}"),))
            assert ok.n_ranks == 8
            # health stays open for probes, without the token
            health = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=SERVICE))
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(0)


async def test_errors_map_to_status_codes_with_the_field_and_no_traceback():
    server = await _serve(GrpcOptions(port=0))
    try:
        async with grpc.aio.insecure_channel(server.address) as ch:
            stub = pb_grpc.FabricSimulationServiceStub(ch)
            expected = {0: (grpc.StatusCode.INVALID_ARGUMENT, "size_bytes: must be > 0"),
                        1: (grpc.StatusCode.NOT_FOUND, "placement.job_id: no such job"),
                        2: (grpc.StatusCode.INTERNAL, "internal error (KeyError)")}
            for size, (code, details) in expected.items():
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.EstimateCollective(pb.EstimateCollectiveRequest(size_bytes=size), timeout=5)
                assert err.value.code() == code
                assert err.value.details().startswith(details)
                assert "Traceback" not in err.value.details()
    finally:
        await server.stop(0)


async def test_reflection_answers_under_v1_and_v1alpha():
    server = await _serve(GrpcOptions(port=0))
    try:
        async with grpc.aio.insecure_channel(server.address) as ch:
            for name in (REFLECTION_V1, "grpc.reflection.v1alpha.ServerReflection"):
                call = ch.stream_stream(f"/{name}/ServerReflectionInfo",
                                        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)

                async def requests():
                    yield reflection_pb2.ServerReflectionRequest(list_services="")

                names = set()
                async for reply in call(requests(), timeout=5):
                    names |= {s.name for s in reply.list_services_response.service}
                assert {SERVICE, "grpc.health.v1.Health", REFLECTION_V1} <= names, name
    finally:
        await server.stop(0)


async def test_mutual_tls_refuses_plaintext_and_clients_without_a_certificate(pki: Path):
    server = await _serve(GrpcOptions(port=0, tls_cert_file=str(pki / "server.pem"),
                                      tls_key_file=str(pki / "server.key"),
                                      tls_client_ca_file=str(pki / "ca.pem")))
    ca = (pki / "ca.pem").read_bytes()
    try:
        async with grpc.aio.insecure_channel(server.address) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _call(ch)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        async with grpc.aio.secure_channel(server.address, grpc.ssl_channel_credentials(ca)) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _call(ch)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # handshake refused: no client certificate
        creds = grpc.ssl_channel_credentials(ca, (pki / "client.key").read_bytes(), (pki / "client.pem").read_bytes())
        async with grpc.aio.secure_channel(server.address, creds) as ch:
            assert (await _call(ch)).n_ranks == 8
    finally:
        await server.stop(0)
