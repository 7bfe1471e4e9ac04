"""Thin grpc.aio servicer for JobService (the server itself is twin.core.grpc_server).

Every RPC: check the request (INVALID_ARGUMENT naming the field, NOT_FOUND for unknown jobs, nodes, links,
CDUs or UPSs) -> the live twin (``twin.jobs.whatif``) -> encode (codec), through the shared ``RpcHandler``
(deadline, span, duration metric, error -> status). WhatIfPlacement asks the fabric twin for every
candidate's communication in one exchange (``FabricComm.answer_many``) as the handler's async work, so its span and
duration metric cover the exchange as well as the ranking; WhatIfFailure with a LINK target asks it the same way for
every crossing job with the link assumed down (``assume``), so the step after is what the live path predicts once the
link is really down. Jobs come from this process's
twin; a job it does not hold is looked up in job_state_latest (the latest state any process stored).
"""

from __future__ import annotations

import math

from twin.core.clock import Clock, SystemClock
from twin.core.grpc_server import GrpcOptions, GrpcServer, RpcHandler
from twin.core.rpc import Deadline, FailedPrecondition, InvalidArgument, NotFound
from twin.jobs import whatif
from twin.jobs.adapters import codec
from twin.jobs.adapters.codec import InvalidMessage
from twin.jobs.adapters.fabric_client import FabricComm, communicator_shape
from twin.jobs.live import CommAnswer, JobTwin
from twin.jobs.v1 import jobs_pb2 as pb
from twin.jobs.v1 import jobs_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["JobService"].full_name
_rpc = RpcHandler(SERVICE_NAME)
DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_CANDIDATES = 1000
_FAILURE_KINDS = {pb.FAILURE_TARGET_KIND_NODE: "node", pb.FAILURE_TARGET_KIND_LINK: "link",
                  pb.FAILURE_TARGET_KIND_CDU: "cdu", pb.FAILURE_TARGET_KIND_UPS: "ups"}


class JobServicer(pb_grpc.JobServiceServicer):
    def __init__(self, twin: JobTwin, store, *, clock: Clock | None = None, fabric: FabricComm | None = None) -> None:
        self.twin, self.store = twin, store
        self.clock = clock or SystemClock()
        self.fabric = fabric  # None: WhatIfPlacement uses the own estimate (and says so)
        self._shape = communicator_shape(twin.site.inventory)

    def now_s(self) -> float:
        return self.clock.now().timestamp()

    def _state(self, job_id: str) -> pb.JobState | None:
        view = self.twin.view(job_id)
        if view is None:
            return None
        s = self.twin.settings
        return codec.view_to_proto(view, self.now_s(), tariff_usd_per_kwh=s.tariff_usd_per_kwh,
                                   carbon_kg_per_kwh=s.carbon_kg_per_kwh)

    async def GetJob(self, request: pb.GetJobRequest, context) -> pb.GetJobResponse:
        state = self._state(request.job_id) if request.job_id else None
        if state is None and request.job_id:
            state = await self.store.latest_of(request.job_id)

        def work(_: Deadline) -> pb.GetJobResponse:
            if not request.job_id:
                raise InvalidArgument("job_id", "required")
            if state is None:
                raise NotFound("job_id", f"unknown job {request.job_id!r}")
            return pb.GetJobResponse(job=state)

        return await _rpc.run("GetJob", context, work)

    async def ListJobs(self, request: pb.ListJobsRequest, context) -> pb.ListJobsResponse:
        def work(_: Deadline) -> pb.ListJobsResponse:
            if request.status not in pb.JobStatus.values():
                raise InvalidArgument("status", f"unknown value {request.status}")
            if request.page_size > MAX_PAGE:
                raise InvalidArgument("page_size", f"at most {MAX_PAGE}")
            size = request.page_size or DEFAULT_PAGE
            ids = sorted(j for j in self.twin.book.jobs if j > request.page_token)
            out: list[pb.JobState] = []
            for job_id in ids:
                state = self._state(job_id)
                if state is not None and (not request.status or state.status == request.status):
                    out.append(state)
                    if len(out) == size:
                        break
            more = bool(out) and len(out) == size and out[-1].job_id != ids[-1]
            return pb.ListJobsResponse(jobs=out, next_page_token=out[-1].job_id if more else "")

        return await _rpc.run("ListJobs", context, work)

    def _placement_request(self, request: pb.WhatIfPlacementRequest):
        if not request.HasField("spec"):
            raise InvalidArgument("spec", "required")
        try:
            spec = codec.spec_from_proto(request.spec, "spec")
        except InvalidMessage as exc:
            raise InvalidArgument(exc.field, exc.reason) from None
        if not request.candidates:
            raise InvalidArgument("candidates", "at least one candidate")
        if len(request.candidates) > MAX_CANDIDATES:
            raise InvalidArgument("candidates", f"at most {MAX_CANDIDATES}")
        candidates = []
        for i, c in enumerate(request.candidates):
            nodes = whatif.candidate_nodes(self.twin.site, list(c.rack_ids), list(c.node_ids), f"candidates[{i}]")
            candidates.append((c.candidate_id or f"candidate-{i}", nodes))
        return spec, candidates

    async def WhatIfPlacement(self, request: pb.WhatIfPlacementRequest, context) -> pb.WhatIfPlacementResponse:
        # async work: the exchange with the fabric twin runs inside the handler's span and duration
        async def work(deadline: Deadline) -> pb.WhatIfPlacementResponse:
            spec, candidates = self._placement_request(request)
            outcomes = await whatif.placement_asking(self.twin, spec, candidates, self.now_s(),
                                                     self._ask_fabric(deadline), check=deadline.check)
            return pb.WhatIfPlacementResponse(outcomes=[codec.placement_outcome(o) for o in outcomes])

        return await _rpc.run("WhatIfPlacement", context, work)

    def _ask_fabric_assuming(self, deadline: Deadline) -> whatif.AskFabricAssuming:
        """Every job's communicators in one exchange with the fabric twin under assumed link states (the failure
        what-if's link down), exact GPUs as the live path asks them (``FabricComm.answer_many(assume=...)``), within
        the caller's deadline; without a fabric client every job gets the own estimate, saying so."""
        fabric = self.fabric

        async def ask(jobs, assume):
            if fabric is None:
                return [CommAnswer({}, "local", "no fabric twin configured (JOBS_FABRIC_TARGET)") for _ in jobs]
            return await fabric.answer_many(jobs, timeout_s=self._budget(fabric, deadline), assume=assume)

        return ask

    @staticmethod
    def _budget(fabric: FabricComm, deadline: Deadline) -> float:
        """Seconds for one exchange with the fabric twin: 1.5 RPC timeouts, at most 80 % of the caller's time left."""
        left = deadline.remaining()
        return fabric.timeout_s * 1.5 if left is None else max(0.0, min(fabric.timeout_s * 1.5, left * 0.8))

    def _ask_fabric(self, deadline: Deadline) -> whatif.AskFabric:
        """Every candidate's communicators in one exchange with the fabric twin (``FabricComm.answer_many``, equal
        communicators of equal shape asked once unless fabric.state.v1 left impaired links out), within the caller's
        deadline; without a fabric client every candidate gets the own estimate, saying so."""
        fabric = self.fabric
        twin = self.twin

        async def ask(jobs):
            if fabric is None:
                return [CommAnswer({}, "local", "no fabric twin configured (JOBS_FABRIC_TARGET)") for _ in jobs]
            shape = self._shape if twin.impaired_links_complete else None  # an unseen one: exact GPUs only
            return await fabric.answer_many(jobs, shape=shape, timeout_s=self._budget(fabric, deadline))

        return ask

    async def WhatIfFailure(self, request: pb.WhatIfFailureRequest, context) -> pb.WhatIfFailureResponse:
        # async work: a LINK target's exchange with the fabric twin runs inside the handler's span and duration
        async def work(deadline: Deadline) -> pb.WhatIfFailureResponse:
            kind = _FAILURE_KINDS.get(request.target_kind)
            if kind is None:
                raise InvalidArgument("target_kind", "one of NODE, LINK, CDU, UPS is required")
            if not request.target_id:
                raise InvalidArgument("target_id", "required")
            _number(request.duration_s, "duration_s")
            impacts = await whatif.failure_asking(self.twin, kind, request.target_id, request.duration_s,
                                                  self.now_s(), self._ask_fabric_assuming(deadline))
            return pb.WhatIfFailureResponse(
                impacts=[codec.job_impact(i) for i in impacts],
                goodput_lost_gpu_hours=sum(i.lost_gpu_h for i in impacts))

        return await _rpc.run("WhatIfFailure", context, work)

    async def WhatIfPowerCap(self, request: pb.WhatIfPowerCapRequest, context) -> pb.WhatIfPowerCapResponse:
        def work(_: Deadline) -> pb.WhatIfPowerCapResponse:
            if not request.job_id:
                raise InvalidArgument("job_id", "required")
            if request.job_id not in self.twin.book.jobs:
                raise NotFound("job_id", f"unknown job {request.job_id!r}")
            _number(request.gpu_power_cap_w, "gpu_power_cap_w", strict=True)
            try:
                r = whatif.power_cap(self.twin, request.job_id, request.gpu_power_cap_w, self.now_s())
            except ValueError as exc:  # the hardware model refuses a cap at or below the GPU's idle power
                raise InvalidArgument("gpu_power_cap_w", str(exc)) from None
            if r is None:
                raise FailedPrecondition("job_id", f"job {request.job_id!r} is not running (or has no spec)")
            return pb.WhatIfPowerCapResponse(
                step_time_before_s=r.before.step_time_s, step_time_after_s=r.after.step_time_s,
                power_before_w=r.before.mean_power_w * r.before.n_gpus, power_after_w=r.after.mean_power_w * r.after.n_gpus,
                energy_per_step_before_j=r.before.mean_power_w * r.before.n_gpus * r.before.step_time_s,
                energy_per_step_after_j=r.after.mean_power_w * r.after.n_gpus * r.after.step_time_s,
                clock_fraction=r.after.clock_fraction)

        return await _rpc.run("WhatIfPowerCap", context, work)


def _number(value: float, field: str, *, strict: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (strict and value <= 0):
        raise InvalidArgument(field, f"must be a finite number {'>' if strict else '>='} 0")


def jobs_grpc_server(servicer: JobServicer, options: GrpcOptions) -> GrpcServer:
    """The shared gRPC server (health, reflection, token, TLS) carrying JobService."""
    return GrpcServer(SERVICE_NAME, lambda server: pb_grpc.add_JobServiceServicer_to_server(servicer, server), options)
