"""Thin grpc.aio servicer for FabricSimulationService (the server itself is twin.core.grpc_server).

Every RPC: decode (codec) → simulate (twin.fabric.simulation) → encode (codec), handed to the
shared `RpcHandler` (deadline, span, duration metric, error → status). Small requests run on the
event loop (a single estimate is tens of microseconds); batches and sweeps larger than one chunk run
in a worker thread bounded by the caller's deadline, and the worker checks the deadline between
chunks, so it stops instead of running on after the caller gave up.

EstimateBatch, EstimatePlacements and EstimateMoe take ``assumed_links``: link states assumed for that request in
place of the live ones (``assume`` builds the view, adapters/assumed.py); the request then runs on a simulator of
its own over that view (fresh caches: the live caches are keyed by the live state version), and the answer's
``assumed_links_applied`` counts the entries used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from twin.core.grpc_server import GrpcOptions, GrpcServer, RpcHandler
from twin.core.rpc import Deadline, InvalidArgument
from twin.fabric.adapters import codec
from twin.fabric.domain.link_health import LinkHealth
from twin.fabric.simulation import (
    CHUNK_ENTRIES,
    MAX_BATCH_ENTRIES,
    MAX_PLACEMENT_ENTRIES,
    FabricSimulator,
    LiveView,
)
from twin.fabric.v1 import fabric_pb2 as pb
from twin.fabric.v1 import fabric_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["FabricSimulationService"].full_name
_rpc = RpcHandler(SERVICE_NAME)


class FabricSimulationServicer(pb_grpc.FabricSimulationServiceServicer):
    def __init__(self, sim: FabricSimulator, state: Callable[[], tuple[str, float, LinkHealth, Callable[[int], str]]],
                 *, max_batch_entries: int = MAX_BATCH_ENTRIES, inline_entries: int = CHUNK_ENTRIES,
                 max_state_links: int = 10_000, assume: Callable[[Sequence], LiveView] | None = None) -> None:
        self.sim = sim
        self.state = state
        self.assume = assume  # assumed_links -> the live view with them applied (None: no live state to assume on)
        self.max_batch_entries = max_batch_entries
        self.inline_entries = inline_entries
        self.max_state_links = max_state_links

    # -- RPCs -----------------------------------------------------------------------------------
    async def EstimateCollective(self, request: pb.EstimateCollectiveRequest, context) -> pb.EstimateCollectiveResponse:
        def work(deadline: Deadline) -> pb.EstimateCollectiveResponse:
            code, size, placement = codec.estimate_collective_one(request)
            size = self.sim.check_size(size, "size_bytes")
            nccl = codec.nccl_version(request.nccl_version)
            return codec.one_estimate_response(self.sim.estimate_one(code, size, placement, deadline, nccl))

        return await self._run("EstimateCollective", context, work, heavy=False)

    async def EstimateBatch(self, request: pb.EstimateBatchRequest, context) -> pb.EstimateBatchResponse:
        def work(deadline: Deadline) -> pb.EstimateBatchResponse:
            coll, sizes, placement = codec.estimate_batch_request(request, self.max_batch_entries)
            sizes = self.sim.check_sizes(sizes, "size_bytes")
            nccl = codec.nccl_version(request.nccl_version)
            with self._simulator(request.assumed_links) as sim:
                table = sim.estimate(coll, sizes, placement, deadline, nccl)
            deadline.check()
            resp = pb.EstimateBatchResponse(n_ranks=table.n_ranks, n_nodes=table.n_nodes,
                                            assumed_links_applied=len(request.assumed_links))
            codec.estimates_to_proto(table, resp.estimates)
            return resp

        return await self._run("EstimateBatch", context, work, heavy=len(request.size_bytes) > self.inline_entries)

    async def EstimatePlacements(self, request: pb.EstimatePlacementsRequest,
                                 context) -> pb.EstimatePlacementsResponse:
        def work(deadline: Deadline) -> pb.EstimatePlacementsResponse:
            if len(request.entries) > MAX_PLACEMENT_ENTRIES:  # before decoding any entry
                raise InvalidArgument("entries", f"{len(request.entries)} entries exceed the limit of "
                                      f"{MAX_PLACEMENT_ENTRIES}")
            entries = codec.estimate_placements_request(request, self.max_batch_entries)
            nccl = codec.nccl_version(request.nccl_version)
            with self._simulator(request.assumed_links) as sim:
                tables = sim.estimate_placements(entries, deadline, nccl)
            deadline.check()
            resp = codec.estimate_placements_response(tables)
            resp.assumed_links_applied = len(request.assumed_links)
            return resp

        # inline only when tiny (a few placements): placement summaries cost more than a batch's entries
        heavy = len(request.entries) > 4 or sum(len(e.size_bytes) for e in request.entries) > self.inline_entries
        return await self._run("EstimatePlacements", context, work, heavy=heavy)

    async def SweepSizes(self, request: pb.SweepSizesRequest, context) -> pb.SweepSizesResponse:
        sizes_hint = self._sweep_points_hint(request)

        def work(deadline: Deadline) -> pb.SweepSizesResponse:
            code = codec.collective_code(request.collective)
            placement = codec.placement_request(request.placement)
            sizes = self.sim.sweep_sizes(request.min_bytes, request.max_bytes, request.steps_per_doubling)
            table = self.sim.estimate(_full(code, sizes.size), sizes, placement, deadline,
                                      codec.nccl_version(request.nccl_version))
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

    async def EstimateMoe(self, request: pb.EstimateMoeRequest, context) -> pb.EstimateMoeResponse:
        def work(deadline: Deadline) -> pb.EstimateMoeResponse:
            moe, placement = codec.moe_request(request)
            with self._simulator(request.assumed_links) as sim:
                answer = sim.moe(moe, placement, deadline)
            deadline.check()
            resp = codec.moe_response(answer)
            resp.assumed_links_applied = len(request.assumed_links)
            return resp

        return await self._run("EstimateMoe", context, work, heavy=len(request.cases) > self.inline_entries)

    async def GetFabricState(self, request: pb.GetFabricStateRequest, context) -> pb.GetFabricStateResponse:
        def work(deadline: Deadline) -> pb.GetFabricStateResponse:
            site_id, state_time_s, health, link_id = self.state()
            return pb.GetFabricStateResponse(state=codec.fabric_state(
                site_id, state_time_s, health, link_id, include_healthy=request.include_healthy,
                max_links=self.max_state_links))

        return await self._run("GetFabricState", context, work, heavy=request.include_healthy)

    # -- plumbing -------------------------------------------------------------------------------
    @contextmanager
    def _simulator(self, assumed_links: Sequence) -> Iterator[FabricSimulator]:
        """The live simulator, or with ``assumed_links`` one of this request's own over the live view with those
        links assumed (validated: INVALID_ARGUMENT names ``assumed_links[i]...``); its work is counted in the live
        simulator's ``entries_estimated``."""
        if not assumed_links:
            yield self.sim
            return
        if self.assume is None:
            raise InvalidArgument("assumed_links", "this fabric twin keeps no live link state to assume on")
        view = self.assume(assumed_links)
        sim = FabricSimulator(self.sim.topology, lambda: view, self.sim.jobs, chunk_entries=self.sim.chunk_entries)
        try:
            yield sim
        finally:
            self.sim.entries_estimated += sim.entries_estimated

    @staticmethod
    def _sweep_points_hint(request: pb.SweepSizesRequest) -> int:
        if request.min_bytes < 1 or request.max_bytes < request.min_bytes:
            return 0
        import math

        return int(math.log2(request.max_bytes / request.min_bytes) * max(1, request.steps_per_doubling)) + 1

    async def _run(self, method: str, context, work: Callable[[Deadline], Any], *, heavy: bool) -> Any:
        return await _rpc.run(method, context, work, heavy=heavy)


def _full(code: int, n: int):
    import numpy as np

    return np.full(n, code, dtype=np.int64)


# -- server ---------------------------------------------------------------------------------------


def fabric_grpc_server(servicer: FabricSimulationServicer, options: GrpcOptions) -> GrpcServer:
    """The shared gRPC server (health, reflection, token, TLS) carrying FabricSimulationService."""
    return GrpcServer(SERVICE_NAME, lambda server: pb_grpc.add_FabricSimulationServiceServicer_to_server(
        servicer, server), options)
