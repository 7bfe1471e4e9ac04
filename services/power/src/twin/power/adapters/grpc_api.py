"""Thin grpc.aio servicer for PowerService (the server itself is twin.core.grpc_server).

Every RPC: check the request (INVALID_ARGUMENT naming the field, NOT_FOUND for unknown ids) → the
live state / the domain (twin.power.whatif) → encode (codec), through the shared ``RpcHandler``
(deadline, span, duration metric, error → status). State and history come from storage (the latest
state of every entity, whichever process computed it); plans and what-ifs run in a worker thread.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from twin.core.clock import Clock, SystemClock
from twin.core.grpc_server import GrpcOptions, GrpcServer, RpcHandler
from twin.core.rpc import Deadline, FailedPrecondition, InvalidArgument, NotFound
from twin.power import whatif
from twin.power.adapters import codec
from twin.power.adapters.codec import SiteIndex
from twin.power.adapters.views import ReadModel
from twin.power.live import RackStage
from twin.power.site import SiteModel
from twin.power.v1 import power_pb2 as pb
from twin.power.v1 import power_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PowerService"].full_name
_rpc = RpcHandler(SERVICE_NAME)
DEFAULT_HISTORY_POINTS = 1000
MAX_HISTORY_POINTS = 100_000


class PowerServicer(pb_grpc.PowerServiceServicer):
    def __init__(self, model: SiteModel, racks: RackStage, store: Any, *, site_id: str | None = None,
                 clock: Clock | None = None, view: ReadModel | None = None) -> None:
        self.model, self.racks, self.store = model, racks, store
        self.site_id = site_id or model.network.site_id
        self.clock = clock or SystemClock()
        self.view = view or ReadModel(SiteIndex.of(model.inventory, self.site_id), len(model.layout.gpu_node))

    # -- state ----------------------------------------------------------------------------------
    async def GetSiteState(self, request: pb.GetSiteStateRequest, context) -> pb.GetSiteStateResponse:
        site = await self.store.latest_of(self.site_id)
        comps = await self.store.latest(self.site_id) if request.include_components else []

        def work(_: Deadline) -> pb.GetSiteStateResponse:
            if site is None:
                raise FailedPrecondition("", "no power state yet: the twin has not received telemetry")
            return pb.GetSiteStateResponse(site=site, components=[
                s for s in comps if s.scope not in (pb.POWER_SCOPE_RACK, pb.POWER_SCOPE_SITE)])

        return await _rpc.run("GetSiteState", context, work)

    async def GetRackState(self, request: pb.GetRackStateRequest, context) -> pb.GetRackStateResponse:
        return await self._one("GetRackState", context, request.rack_id, "rack_id",
                               self.model.inventory.rack_index, pb.GetRackStateResponse)

    async def GetComponentState(self, request: pb.GetComponentStateRequest, context) -> pb.GetComponentStateResponse:
        known = set(self.model.network.comp_ids)
        return await self._one("GetComponentState", context, request.component_id, "component_id", known,
                               pb.GetComponentStateResponse)

    async def _one(self, method: str, context, entity_id: str, field: str, known, response) -> Any:
        state = await self.store.latest_of(entity_id) if entity_id in known else None

        def work(_: Deadline):
            if not entity_id:
                raise InvalidArgument(field, "required")
            if entity_id not in known:
                raise NotFound(field, f"unknown {field.removesuffix('_id')} {entity_id!r}")
            if state is None:
                raise FailedPrecondition(field, f"no power state for {entity_id!r} yet")
            return response(state=state)

        return await _rpc.run(method, context, work)

    async def GetHistory(self, request: pb.GetHistoryRequest, context) -> pb.GetHistoryResponse:
        known = request.entity_id in self.model.inventory.rack_index or request.entity_id in self.model.network.comp_ids \
            or request.entity_id == self.site_id

        def check(_: Deadline) -> tuple[datetime, datetime, int]:
            if not request.entity_id:
                raise InvalidArgument("entity_id", "required")
            if not known:
                raise NotFound("entity_id", f"unknown rack, component or site {request.entity_id!r}")
            if not request.HasField("start_time"):
                raise InvalidArgument("start_time", "required")
            start = _time(request.start_time, "start_time")
            end = (_time(request.end_time, "end_time") if request.HasField("end_time")
                   else self.clock.now())
            if end <= start:
                raise InvalidArgument("end_time", "must be after start_time")
            if request.max_points > MAX_HISTORY_POINTS:
                raise InvalidArgument("max_points", f"at most {MAX_HISTORY_POINTS}")
            return start, end, request.max_points or DEFAULT_HISTORY_POINTS

        start, end, n = await _rpc.run("GetHistory", context, check)
        return pb.GetHistoryResponse(states=await self.store.history(request.entity_id, start, end, n))

    # -- plans and what-ifs ---------------------------------------------------------------------
    async def PlanCurtailment(self, request: pb.PlanCurtailmentRequest, context) -> pb.PlanCurtailmentResponse:
        stored = codec.rack_w_of(await self.store.latest(self.site_id, pb.POWER_SCOPE_RACK),
                                 self.model.inventory.rack_index, self.model.network.n_racks)
        jobs, cooling_w = self.view.planner_jobs(), self.view.cooling_w   # read on the event loop

        def work(_: Deadline) -> pb.PlanCurtailmentResponse:
            _number(request.limit_kw, "limit_kw", minimum=0.0, maximum=MAX_LIMIT_KW)
            _number(request.deadline_s, "deadline_s", minimum=0.0)
            _number(request.duration_s, "duration_s", minimum=0.0, strict=True)
            p = whatif.plan(self.model, self.racks, limit_w=request.limit_kw * 1e3, deadline_s=request.deadline_s,
                            duration_s=request.duration_s, rack_w=stored, jobs=jobs, cooling_w=cooling_w)
            return pb.PlanCurtailmentResponse(plan=codec.plan(p, self.model.sources, site_id=self.site_id,
                                                              created_s=self.clock.now().timestamp()))

        return await _rpc.run("PlanCurtailment", context, work, heavy=True)

    async def WhatIfPowerCap(self, request: pb.WhatIfPowerCapRequest, context) -> pb.WhatIfPowerCapResponse:
        def work(_: Deadline) -> pb.WhatIfPowerCapResponse:
            _number(request.cap_w, "cap_w", minimum=0.0, strict=True)
            target = request.WhichOneof("target")
            n = len(self.model.layout.gpu_node)
            if target is None:
                raise InvalidArgument("target", "one of gpus, racks or job_id is required")
            if target == "gpus":
                gpus = np.asarray(request.gpus.gpu_ids, dtype=np.int64)
                if not gpus.size:
                    raise InvalidArgument("gpus.gpu_ids", "at least one GPU id")
                if gpus.max() >= n:
                    raise InvalidArgument("gpus.gpu_ids", f"GPU ids are 0..{n - 1}")
            elif target == "racks":
                if not request.racks.rack_ids:
                    raise InvalidArgument("racks.rack_ids", "at least one rack id")
                try:
                    gpus = whatif.gpus_of_rack_ids(self.model, list(request.racks.rack_ids))
                except KeyError as exc:
                    raise NotFound("racks.rack_ids", f"unknown rack {exc.args[0]!r}") from None
            else:
                if not request.job_id:
                    raise InvalidArgument("job_id", "required")
                job = self.view.jobs.get(request.job_id)
                if job is None:
                    raise NotFound("job_id", f"no running job {request.job_id!r} on jobs.state.v1")
                gpus = job.gpus
            return codec.power_cap_response(whatif.power_cap(self.model, self.racks, gpus, request.cap_w))

        return await _rpc.run("WhatIfPowerCap", context, work, heavy=True)

    async def WhatIfComponentFailure(self, request: pb.WhatIfComponentFailureRequest,
                                     context) -> pb.WhatIfComponentFailureResponse:
        rows = await self.store.latest(self.site_id, pb.POWER_SCOPE_RACK)
        rack_w = self.current_rack_w(rows)

        def work(_: Deadline) -> pb.WhatIfComponentFailureResponse:
            ids = list(request.component_ids)
            if not ids:
                raise InvalidArgument("component_ids", "at least one PDU, UPS group, UPS, transformer or feed id")
            for i, cid in enumerate(ids):
                if cid not in self.model.network.comp_ids:
                    raise NotFound(f"component_ids[{i}]", f"unknown component {cid!r}")
            return codec.failure_response(self.model.network, whatif.failure(self.model, rack_w, ids))

        return await _rpc.run("WhatIfComponentFailure", context, work, heavy=True)

    def current_rack_w(self, rows: list[pb.PowerState]) -> np.ndarray:
        """Every rack's latest stored input power; racks never stored: this process's model."""
        stored = codec.rack_w_of(rows, self.model.inventory.rack_index, self.model.network.n_racks)
        return np.where(np.isnan(stored), self.racks.modelled_rack_input_w(), stored)


def _time(ts, field: str) -> datetime:
    try:
        return datetime.fromtimestamp(codec.seconds(ts), UTC)
    except (OverflowError, OSError, ValueError):  # past what datetime / the platform's time_t holds
        raise InvalidArgument(field, "outside the representable time range") from None


#: A site limit above this is no limit a grid operator can ask for (1 TW: hundreds of today's largest, multi-GW AI
#: campuses); it also keeps limit_kw x 1e3 finite (a limit of 1.8e305 kW overflowed to inf in the planner).
MAX_LIMIT_KW = 1e9


def _number(value: float, field: str, *, minimum: float, strict: bool = False,
            maximum: float = math.inf) -> None:
    if not math.isfinite(value) or value < minimum or (strict and value <= minimum) or value > maximum:
        bound = f" and <= {maximum:g}" if math.isfinite(maximum) else ""
        raise InvalidArgument(field, f"must be a finite number {'>' if strict else '>='} {minimum:g}{bound}")


def power_grpc_server(servicer: PowerServicer, options: GrpcOptions) -> GrpcServer:
    """The shared gRPC server (health, reflection, token, TLS) carrying PowerService."""
    return GrpcServer(SERVICE_NAME, lambda server: pb_grpc.add_PowerServiceServicer_to_server(servicer, server),
                      options)
