"""Fuzz: CoolingService request decoding through the real servicer (twin.cooling.adapters.grpc_api.CoolingServicer
on the gb200-nvl72-hall site: liquid loops, CDUs, CRAHs, an in-memory store, no server), cooling.events.v1 validation (codec.event, then
the live twin's apply_event, as the service's EventHandler does) and cooling.racks.v1, the second stage's input
(stream.decode_stage_input, then the live twin's apply_* and one evaluation, as the SiteHandler does).

Documented rejections: an undecodable request fails with protobuf's DecodeError; a decoded request is answered or
refused with INVALID_ARGUMENT (a bad field, named), NOT_FOUND (unknown rack, CDU, loop, CRAH, plant unit or air
group) or DEADLINE_EXCEEDED; INTERNAL is a crash. A cooling event is applied or rejected with CodecError /
EventRejected (both name the field: the DLQ reason); any other exception is a crash. The same holds for a
cooling.racks.v1 record.
"""

from __future__ import annotations

import asyncio
import math

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import example, given
from hypothesis import strategies as st

from twin.cooling.adapters import codec
from twin.cooling.adapters.codec import CodecError
from twin.cooling.adapters.grpc_api import CoolingServicer
from twin.cooling.adapters.repository import InMemoryCoolingStore
from twin.cooling.adapters.stream import decode_stage_input
from twin.cooling.domain.events import EventRejected
from twin.cooling.live import CoolingLive, GpuReading, RackGpus
from twin.cooling.site import build_cooling_site
from twin.cooling.v1 import cooling_pb2 as pb
from twin.core.facility import load_facility_spec

from ._support import FUZZ, call_servicer, messages, tried

OK_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.DEADLINE_EXCEEDED}
SITE = build_cooling_site(load_facility_spec("gb200-nvl72-hall"))
NET = SITE.network
LIVE = CoolingLive(SITE)
_LOOP = asyncio.new_event_loop()
SERVICER = CoolingServicer(LIVE, InMemoryCoolingStore())

ENTITY = st.sampled_from(sorted({NET.site_id, *NET.rack_ids, *NET.loop_ids, *NET.cdu_ids, *NET.crah_ids,
                                 *NET.plant_ids, *NET.air_group_ids, "", "nope"}))
C = "twin.cooling.v1."
TEMP = st.one_of(st.floats(-50, 120), st.sampled_from([2.0, 60.0, 10.0, 40.0, -273.15, 1e308]))
FRACTION = st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0.0, 1.0, 0.5]))
TS_SECONDS = st.one_of(st.sampled_from([0, -1, 1_750_000_000, 253402300800, -62135596801, 2**63 - 1, -(2**63)]),
                       st.integers(1_700_000_000, 1_900_000_000), st.integers(-(2**63), 2**63 - 1))
HINTS = {
    C + "GetStateRequest.entity_ids": ENTITY,
    C + "GetHistoryRequest.entity_id": ENTITY,
    C + "GetHistoryRequest.max_points": st.integers(0, 200_000),
    C + "WhatIfFailureRequest.cdu_ids": st.sampled_from(NET.cdu_ids or ("",)),
    C + "WhatIfFailureRequest.crah_ids": st.sampled_from(NET.crah_ids or ("",)),
    C + "WhatIfFailureRequest.plant_unit_ids": st.sampled_from(NET.plant_ids or ("",)),
    C + "WhatIfFailureRequest.horizon_s": st.floats(0, 1e5),
    C + "WhatIfSetpointRequest.horizon_s": st.floats(0, 1e5),
    C + "PumpFlow.cdu_id": st.sampled_from(NET.cdu_ids or ("",)),
    C + "PumpFlow.flow_fraction": FRACTION,
    C + "RackFlow.rack_id": st.sampled_from(NET.rack_ids),
    C + "RackFlow.flow_fraction": FRACTION,
    C + "WhatIfSetpointRequest.facility_supply_temp_c": TEMP,
    C + "WhatIfSetpointRequest.supply_air_temp_c": TEMP,
    C + "WhatIfSetpointRequest.dry_bulb_temp_c": TEMP,
    C + "WhatIfSetpointRequest.wet_bulb_temp_c": TEMP,
    C + "CoolingEvent.entity_id": ENTITY,
    C + "CoolingEvent.site_id": st.sampled_from([NET.site_id, ""]),
    C + "CoolingEvent.flow_fraction": FRACTION,
    C + "CoolingEvent.facility_supply_temp_c": TEMP,
    C + "CoolingEvent.supply_air_temp_c": TEMP,
    C + "CoolingEvent.dry_bulb_temp_c": TEMP,
    C + "CoolingEvent.wet_bulb_temp_c": TEMP,
    "google.protobuf.Timestamp.seconds": TS_SECONDS,
    "google.protobuf.Timestamp.nanos": st.integers(-(10**9), 10**9),
}
RPCS = {
    "GetState": pb.GetStateRequest,
    "GetHistory": pb.GetHistoryRequest,
    "WhatIfFailure": pb.WhatIfFailureRequest,
    "WhatIfSetpoint": pb.WhatIfSetpointRequest,
}


@pytest.fixture(scope="module", autouse=True)
def _close_loop():
    yield
    _LOOP.run_until_complete(_LOOP.shutdown_asyncgens())
    _LOOP.run_until_complete(_LOOP.shutdown_default_executor())  # heavy RPCs ran in worker threads
    _LOOP.close()


def _history(seconds: int) -> pb.GetHistoryRequest:
    req = pb.GetHistoryRequest(entity_id=NET.site_id)
    req.start_time.seconds = seconds
    return req


@FUZZ
@given(st.sampled_from(sorted(RPCS)).flatmap(
    lambda m: st.tuples(st.just(m), messages(RPCS[m].DESCRIPTOR, HINTS, max_repeated=5))))
@example(("GetHistory", _history(2**63 - 1)))      # regression: answered INTERNAL (OverflowError)
@example(("GetHistory", _history(-(2**63))))
def test_decoded_requests_are_answered_or_refused_with_a_request_error(item) -> None:
    method, request = item
    tried(f"cooling_grpc_{method}")
    call_servicer(_LOOP, SERVICER, method, request, OK_CODES)


@FUZZ
@given(st.sampled_from(sorted(RPCS)), st.binary(max_size=80))
def test_request_bytes_decode_or_fail_with_decode_error(method: str, raw: bytes) -> None:
    tried("cooling_grpc_bytes")
    try:
        request = RPCS[method].FromString(raw)
    except DecodeError:
        return
    call_servicer(_LOOP, SERVICER, method, request, OK_CODES)


@st.composite
def valid_ish_events(draw) -> pb.CoolingEvent:
    kind = draw(st.sampled_from([v.number for v in pb.CoolingEventKind.DESCRIPTOR.values]))
    ids = {1: NET.cdu_ids, 2: NET.cdu_ids, 3: NET.cdu_ids, 4: NET.cdu_ids, 5: NET.crah_ids, 6: NET.crah_ids,
           7: NET.plant_ids, 8: NET.plant_ids}.get(kind, (NET.site_id,) + NET.crah_ids)
    msg = pb.CoolingEvent(kind=kind, entity_id=draw(st.sampled_from(ids or ("x",))), site_id=NET.site_id)
    msg.event_time.seconds = draw(st.integers(1_700_000_000, 1_800_000_000))
    for name in ("flow_fraction", "facility_supply_temp_c", "supply_air_temp_c", "dry_bulb_temp_c",
                 "wet_bulb_temp_c"):
        if draw(st.booleans()):
            setattr(msg, name, draw(FRACTION if name == "flow_fraction" else TEMP))
    return msg


def _event_at(seconds: int, nanos: int) -> pb.CoolingEvent:
    msg = pb.CoolingEvent(kind=pb.COOLING_EVENT_KIND_PUMP_FAILURE, entity_id=NET.cdu_ids[0], flow_fraction=0.5)
    msg.event_time.seconds, msg.event_time.nanos = seconds, nanos
    return msg


@FUZZ
@given(st.lists(st.one_of(valid_ish_events(), messages(pb.CoolingEvent.DESCRIPTOR, HINTS)), min_size=1, max_size=6))
# found by this fuzzer: an event time protobuf refuses to convert raised ValueError out of the event handler
@example([_event_at(1_750_000_000, -(2**31))])
@example([_event_at(2**63 - 1, 0)])
def test_cooling_events_are_applied_or_rejected_with_the_documented_reason(events) -> None:
    live = CoolingLive(SITE)
    applied = 0
    for msg in events:
        tried("cooling_event")
        try:
            ev = codec.event(msg)
            live.apply_event(ev)
        except (CodecError, EventRejected) as exc:
            assert str(exc)   # the DLQ reason
            continue
        applied += 1
        tried("cooling_event_applied")
        assert math.isfinite(ev.time_s)
    if applied:   # the conditions the events left still evaluate
        after = live.what_if(live.cond, 600.0)
        codec.what_if_outcome(NET, after).SerializeToString()


N_GPUS = len(SITE.gpus.gpu_rack)
STAGE_HINTS = {
    **HINTS,
    C + "CoolingStageInput.site_id": st.sampled_from([NET.site_id, ""]),
    C + "RackHeat.rack_id": st.sampled_from(NET.rack_ids),
    C + "RackGpus.rack_id": st.sampled_from(NET.rack_ids),
    C + "RackGpus.gpu_ids": st.integers(0, N_GPUS + 2),
    C + "RackGpus.calibrated_gpu_ids": st.integers(0, N_GPUS + 2),
    "twin.telemetry.v1.RackTelemetryBatch.site_id": st.sampled_from([NET.site_id, ""]),
    "twin.telemetry.v1.CduSample.cdu_id": st.sampled_from(NET.cdu_ids),
}
VALUE = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 2000))


@st.composite
def valid_ish_rack_gpus(draw) -> pb.CoolingStageInput:
    """A RackGpus record as stage 1 writes it (one rack's GPUs, parallel lists), with any values."""
    rack = draw(st.integers(0, NET.n_racks - 1))
    idx = [int(g) for g in (SITE.gpus.gpu_rack == rack).nonzero()[0]]
    g = sorted(draw(st.sets(st.sampled_from(idx), min_size=1, max_size=8)))
    n = len(g)
    vals = [draw(st.lists(VALUE, min_size=n, max_size=n)) for _ in range(2)]
    import numpy as np

    nan = np.full(n, np.nan)
    reading = GpuReading(rack=rack, time_s=float(draw(st.integers(1_700_000_000, 1_800_000_000))),
                         gpu=np.array(g), power_w=np.array(vals[0]), gpu_temp_c=nan, hbm_temp_c=nan,
                         dram_active=np.array(vals[1]), coolant_flow_lpm=draw(VALUE))
    cal = np.array(g[: draw(st.integers(0, n))])
    params = None
    if len(cal):
        base = SITE.gpu.take(cal)
        params = type(base)(**{k: np.array(draw(st.lists(VALUE, min_size=len(cal), max_size=len(cal))))
                               for k in base.__dataclass_fields__})
    return codec.gpus_input(NET.site_id, NET.rack_ids, RackGpus(reading, cal, params))


@FUZZ
@given(st.lists(st.one_of(valid_ish_rack_gpus(), messages(pb.CoolingStageInput.DESCRIPTOR, STAGE_HINTS,
                                                          max_repeated=4)), min_size=1, max_size=6))
def test_stage_two_records_are_applied_or_rejected_with_the_documented_reason(records) -> None:
    live = CoolingLive(SITE)
    live.apply_power([(r, 1_750_000_000.0, 100e3) for r in range(NET.n_racks)])
    for msg in records:
        tried("cooling_stage_input")
        try:
            which, value = decode_stage_input(msg, live)
            if which == "heat":
                live.apply_power([value])
            elif which == "gpus":
                live.apply_rack_gpus([value])
            elif which == "equipment":
                live.apply_equipment([value])
            else:
                live.apply_event(value)
        except (CodecError, EventRejected) as exc:
            assert str(exc)   # the DLQ reason
            continue
        tried("cooling_stage_input_applied")
    ev = live.evaluate(1_750_000_001.0)   # what was applied still evaluates and encodes
    codec.states(NET, ev.tick.state, ev.cond, time_s=1_750_000_001.0)
