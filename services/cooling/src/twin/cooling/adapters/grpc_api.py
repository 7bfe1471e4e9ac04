"""Thin grpc.aio servicer for CoolingService (the server itself is twin.core.grpc_server).

Every RPC: check the request (INVALID_ARGUMENT naming the field, NOT_FOUND for unknown ids) → the live
twin / the domain → encode (codec), through the shared ``RpcHandler`` (deadline, span, duration metric,
error → status). State and history come from storage (the latest state of every entity); what-ifs
run in a worker thread on the live twin's present heat, GPU power, thermal state and conditions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from twin.cooling.adapters import codec
from twin.cooling.adapters.codec import CodecError
from twin.cooling.live import CoolingLive
from twin.cooling.v1 import cooling_pb2 as pb
from twin.cooling.v1 import cooling_pb2_grpc as pb_grpc
from twin.core.clock import Clock, SystemClock
from twin.core.grpc_server import GrpcOptions, GrpcServer, RpcHandler
from twin.core.rpc import Deadline, InvalidArgument, NotFound

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CoolingService"].full_name
_rpc = RpcHandler(SERVICE_NAME)
DEFAULT_HISTORY_POINTS = 1000
MAX_HISTORY_POINTS = 100_000


def _request_error(exc: CodecError) -> Exception:
    return (
        NotFound(exc.field, exc.message)
        if exc.message.startswith("unknown")
        else InvalidArgument(exc.field, exc.message)
    )


class CoolingServicer(pb_grpc.CoolingServiceServicer):
    """``refresh``: awaited before a what-if (the app's: a process whose stage 2 has not held the site lately
    re-reads the stored heat and conditions first)."""

    def __init__(
        self,
        live: CoolingLive,
        store: Any,
        *,
        clock: Clock | None = None,
        refresh: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.live, self.store = live, store
        self.net = live.net
        self.clock = clock or SystemClock()
        self.refresh = refresh

    async def GetState(self, request: pb.GetStateRequest, context) -> pb.GetStateResponse:
        scope = int(request.scope)
        wanted = list(request.entity_ids)

        def check(_: Deadline) -> None:
            if scope not in pb.CoolingScope.values():
                raise InvalidArgument("scope", f"unknown scope {scope}")
            for i, e in enumerate(wanted):
                s = codec.scope_of(self.net, e)
                if s == pb.COOLING_SCOPE_UNSPECIFIED:
                    raise NotFound(
                        f"entity_ids[{i}]", f"unknown rack, CDU, loop, CRAH, air group or site {e!r}"
                    )
                if scope and s != scope:
                    raise InvalidArgument(
                        f"entity_ids[{i}]", f"{e!r} is not of scope {pb.CoolingScope.Name(scope)}"
                    )

        await _rpc.run("GetState", context, check)
        rows = await self.store.latest(self.net.site_id, scope or None)
        if wanted:
            keep = set(wanted)
            rows = [s for s in rows if s.entity_id in keep]
        out = pb.GetStateResponse(states=rows)
        if rows:
            out.state_time.CopyFrom(max((s.state_time for s in rows), key=lambda t: t.ToNanoseconds()))
        return out

    async def GetHistory(self, request: pb.GetHistoryRequest, context) -> pb.GetHistoryResponse:
        def check(_: Deadline) -> tuple[datetime, datetime, int]:
            if not request.entity_id:
                raise InvalidArgument("entity_id", "required")
            if codec.scope_of(self.net, request.entity_id) == pb.COOLING_SCOPE_UNSPECIFIED:
                raise NotFound(
                    "entity_id", f"unknown rack, CDU, loop, CRAH, air group or site {request.entity_id!r}"
                )
            if not request.HasField("start_time"):
                raise InvalidArgument("start_time", "required")
            start = _time(request.start_time, "start_time")
            end = _time(request.end_time, "end_time") if request.HasField("end_time") else self.clock.now()
            if end <= start:
                raise InvalidArgument("end_time", "must be after start_time")
            if request.max_points > MAX_HISTORY_POINTS:
                raise InvalidArgument("max_points", f"at most {MAX_HISTORY_POINTS}")
            return start, end, request.max_points or DEFAULT_HISTORY_POINTS

        start, end, n = await _rpc.run("GetHistory", context, check)
        return pb.GetHistoryResponse(states=await self.store.history(request.entity_id, start, end, n))

    async def WhatIfFailure(self, request: pb.WhatIfFailureRequest, context) -> pb.WhatIfFailureResponse:
        # read on the event loop, where events and equipment telemetry change it: the event conditions with
        # the fresh measurements over them (a what-if changes the present the twin runs on)
        if self.refresh is not None:
            await self.refresh()
        cond = self.live.present_conditions()

        def work(_: Deadline) -> pb.WhatIfFailureResponse:
            if not (
                request.cdu_ids
                or request.crah_ids
                or request.plant_unit_ids
                or request.pumps
                or request.rack_flows
            ):
                raise InvalidArgument("cdu_ids", "name at least one CDU, CRAH, plant unit, pump or rack flow")
            try:
                after, horizon = codec.failure_request(self.net, cond, request)
            except CodecError as exc:
                raise _request_error(exc) from None
            return pb.WhatIfFailureResponse(
                outcome=codec.what_if_outcome(self.net, self.live.what_if(after, horizon, before=cond))
            )

        return await _rpc.run("WhatIfFailure", context, work, heavy=True)

    async def WhatIfSetpoint(self, request: pb.WhatIfSetpointRequest, context) -> pb.WhatIfSetpointResponse:
        if self.refresh is not None:
            await self.refresh()
        cond = self.live.present_conditions()

        def work(_: Deadline) -> pb.WhatIfSetpointResponse:
            if not any(
                request.HasField(f)
                for f in ("facility_supply_temp_c", "supply_air_temp_c", "dry_bulb_temp_c", "wet_bulb_temp_c")
            ):
                raise InvalidArgument(
                    "facility_supply_temp_c",
                    "give a facility supply, supply air, dry bulb or wet bulb temperature",
                )
            try:
                after, horizon = codec.setpoint_request(self.net, cond, request)
            except CodecError as exc:
                raise _request_error(exc) from None
            return pb.WhatIfSetpointResponse(
                outcome=codec.what_if_outcome(self.net, self.live.what_if(after, horizon, before=cond))
            )

        return await _rpc.run("WhatIfSetpoint", context, work, heavy=True)


def _time(ts, field: str) -> datetime:
    try:
        return datetime.fromtimestamp(codec.seconds(ts), UTC)
    except (OverflowError, OSError, ValueError):  # past what datetime / the platform's time_t holds
        raise InvalidArgument(field, "outside the representable time range") from None


def cooling_grpc_server(servicer: CoolingServicer, options: GrpcOptions) -> GrpcServer:
    """The shared gRPC server (health, reflection, token, TLS) carrying CoolingService."""
    return GrpcServer(
        SERVICE_NAME, lambda server: pb_grpc.add_CoolingServiceServicer_to_server(servicer, server), options
    )
