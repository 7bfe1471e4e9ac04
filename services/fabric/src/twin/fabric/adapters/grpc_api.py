"""Thin grpc.aio servicer for FabricSimulationService, plus health checking and reflection.

Every RPC: decode (codec) → simulate (twin.fabric.simulation) → encode (codec). Small requests run
on the event loop (a single estimate is tens of microseconds); batches and sweeps larger than one
chunk run in a worker thread, bounded by the caller's deadline (asyncio.wait_for), and the worker
itself checks the deadline between chunks, so it stops instead of running on after the caller gave
up. Errors: InvalidArgument → INVALID_ARGUMENT, NotFound → NOT_FOUND, deadline → DEADLINE_EXCEEDED;
the details start with the offending field name.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from opentelemetry import metrics, trace

from twin.fabric.adapters import codec
from twin.fabric.domain.link_health import LinkHealth
from twin.fabric.simulation import (
    CHUNK_ENTRIES,
    MAX_BATCH_ENTRIES,
    Deadline,
    DeadlineExceeded,
    FabricSimulator,
    InvalidArgument,
    NotFound,
)
from twin.fabric.v1 import fabric_pb2 as pb
from twin.fabric.v1 import fabric_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["FabricSimulationService"].full_name

_tracer = trace.get_tracer("twin.fabric.grpc")
_meter = metrics.get_meter("twin.fabric.grpc")
_duration = _meter.create_histogram("twin.fabric.rpc.duration", unit="s", description="server time per RPC")


class FabricSimulationServicer(pb_grpc.FabricSimulationServiceServicer):
    def __init__(self, sim: FabricSimulator, state: Callable[[], tuple[str, float, LinkHealth, Callable[[int], str]]],
                 *, max_batch_entries: int = MAX_BATCH_ENTRIES, inline_entries: int = CHUNK_ENTRIES,
                 max_state_links: int = 10_000) -> None:
        self.sim = sim
        self.state = state
        self.max_batch_entries = max_batch_entries
        self.inline_entries = inline_entries
        self.max_state_links = max_state_links

    # -- RPCs -----------------------------------------------------------------------------------
    async def EstimateCollective(self, request: pb.EstimateCollectiveRequest, context) -> pb.EstimateCollectiveResponse:
        def work(deadline: Deadline) -> pb.EstimateCollectiveResponse:
            coll, sizes, placement = codec.estimate_collective_request(request)
            sizes = self.sim.check_sizes(sizes, "size_bytes")
            return codec.estimate_collective_response(self.sim.estimate(coll, sizes, placement, deadline))

        return await self._run("EstimateCollective", context, work, heavy=False)

    async def EstimateBatch(self, request: pb.EstimateBatchRequest, context) -> pb.EstimateBatchResponse:
        def work(deadline: Deadline) -> pb.EstimateBatchResponse:
            coll, sizes, placement = codec.estimate_batch_request(request, self.max_batch_entries)
            sizes = self.sim.check_sizes(sizes, "size_bytes")
            table = self.sim.estimate(coll, sizes, placement, deadline)
            deadline.check()
            resp = pb.EstimateBatchResponse(n_ranks=table.n_ranks, n_nodes=table.n_nodes)
            codec.estimates_to_proto(table, resp.estimates)
            return resp

        return await self._run("EstimateBatch", context, work, heavy=len(request.size_bytes) > self.inline_entries)

    async def SweepSizes(self, request: pb.SweepSizesRequest, context) -> pb.SweepSizesResponse:
        sizes_hint = self._sweep_points_hint(request)

        def work(deadline: Deadline) -> pb.SweepSizesResponse:
            code = codec.collective_code(request.collective)
            placement = codec.placement_request(request.placement)
            sizes = self.sim.sweep_sizes(request.min_bytes, request.max_bytes, request.steps_per_doubling)
            table = self.sim.estimate(_full(code, sizes.size), sizes, placement, deadline)
            deadline.check()
            resp = pb.SweepSizesResponse(n_ranks=table.n_ranks, n_nodes=table.n_nodes)
            codec.estimates_to_proto(table, resp.estimates)
            return resp

        return await self._run("SweepSizes", context, work, heavy=sizes_hint > self.inline_entries)

    async def EstimateTrainingStep(self, request: pb.EstimateTrainingStepRequest, context):
        def work(deadline: Deadline) -> pb.EstimateTrainingStepResponse:
            placement = codec.placement_request(request.placement, required=False)
            answer = self.sim.training_step(codec.model_request(request.model),
                                            codec.parallel_request(request.parallelism), placement, deadline)
            return codec.training_step_response(answer)

        return await self._run("EstimateTrainingStep", context, work, heavy=False)

    async def GetFabricState(self, request: pb.GetFabricStateRequest, context) -> pb.GetFabricStateResponse:
        def work(deadline: Deadline) -> pb.GetFabricStateResponse:
            site_id, state_time_s, health, link_id = self.state()
            return pb.GetFabricStateResponse(state=codec.fabric_state(
                site_id, state_time_s, health, link_id, include_healthy=request.include_healthy,
                max_links=self.max_state_links))

        return await self._run("GetFabricState", context, work, heavy=request.include_healthy)

    # -- plumbing -------------------------------------------------------------------------------
    @staticmethod
    def _sweep_points_hint(request: pb.SweepSizesRequest) -> int:
        if request.min_bytes < 1 or request.max_bytes < request.min_bytes:
            return 0
        import math

        return int(math.log2(request.max_bytes / request.min_bytes) * max(1, request.steps_per_doubling)) + 1

    async def _run(self, method: str, context, work: Callable[[Deadline], Any], *, heavy: bool) -> Any:
        started = time.perf_counter()
        remaining = context.time_remaining()
        deadline = Deadline(remaining)
        code = grpc.StatusCode.OK
        with _tracer.start_as_current_span(f"{SERVICE_NAME}/{method}", kind=trace.SpanKind.SERVER) as span:
            try:
                if not heavy:
                    return work(deadline)
                job = asyncio.to_thread(work, deadline)
                if remaining is None:
                    return await job
                try:
                    return await asyncio.wait_for(job, timeout=max(0.0, remaining))
                except TimeoutError:
                    deadline.cancel()  # the worker stops at its next chunk boundary
                    raise DeadlineExceeded() from None
            except InvalidArgument as exc:
                code = grpc.StatusCode.INVALID_ARGUMENT
                details = str(exc)
            except NotFound as exc:
                code = grpc.StatusCode.NOT_FOUND
                details = str(exc)
            except DeadlineExceeded as exc:
                code = grpc.StatusCode.DEADLINE_EXCEEDED
                details = str(exc)
            finally:
                span.set_attribute("rpc.grpc.status_code", code.value[0])
                _duration.record(time.perf_counter() - started, {"rpc.method": method, "rpc.grpc.status_code": code.name})
            span.set_status(trace.Status(trace.StatusCode.ERROR, details))
            await context.abort(code, details)


def _full(code: int, n: int):
    import numpy as np

    return np.full(n, code, dtype=np.int64)


# -- server ---------------------------------------------------------------------------------------


class FabricGrpcServer:
    """grpc.aio server with the fabric service, health (per service) and reflection."""

    def __init__(self, servicer: FabricSimulationServicer, *, host: str = "0.0.0.0", port: int = 50053,
                 max_message_bytes: int = 64 * 1024 * 1024) -> None:
        self.servicer = servicer
        self.host = host
        self.requested_port = port
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.so_reuseport", 0)]
        self.server = grpc.aio.server(options=options)
        self.health = health_aio.HealthServicer()
        pb_grpc.add_FabricSimulationServiceServicer_to_server(servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.server)
        self.port = 0

    async def start(self) -> int:
        self.port = self.server.add_insecure_port(f"{self.host}:{self.requested_port}")
        if self.port == 0:
            raise OSError(f"cannot bind gRPC port {self.host}:{self.requested_port}")
        await self.server.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def stop(self, grace_s: float = 5.0) -> None:
        """Graceful stop: report NOT_SERVING, refuse new RPCs, let running ones finish within grace."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)

    async def wait(self) -> None:
        await self.server.wait_for_termination()
