"""Fuzz: PowerService request decoding through the real servicer (twin.power.adapters.grpc_api.PowerServicer on
the dgx-h100-su site model, an in-memory store, no server).

Documented rejections: an undecodable request never reaches the servicer (protobuf's DecodeError); a decoded
request is answered or refused with a RequestError the shared RpcHandler maps to INVALID_ARGUMENT (a bad field,
named), NOT_FOUND (unknown rack, component, site or job), FAILED_PRECONDITION (no power state stored yet) or
DEADLINE_EXCEEDED. INTERNAL (any other exception inside the servicer) is a crash.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import example, given
from hypothesis import strategies as st

from twin.core.facility import load_facility_spec
from twin.power.adapters.grpc_api import PowerServicer
from twin.power.adapters.repository import InMemoryPowerStore
from twin.power.live import RackStage
from twin.power.site import build_site_model
from twin.power.v1 import power_pb2 as pb

from ._support import FUZZ, call_servicer, messages, tried

OK_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.DEADLINE_EXCEEDED}
MODEL = build_site_model(load_facility_spec("dgx-h100-su"))
RACKS = RackStage(MODEL)
SITE = MODEL.network.site_id
RACK_IDS = sorted(MODEL.inventory.rack_index)
COMP_IDS = sorted(MODEL.network.comp_ids)
_LOOP = asyncio.new_event_loop()
SERVICER = PowerServicer(MODEL, RACKS, InMemoryPowerStore(), site_id=SITE)

IDS = st.one_of(st.sampled_from(RACK_IDS), st.sampled_from(COMP_IDS), st.just(SITE), st.sampled_from(["", "x"]))
P = "twin.power.v1."
TS_SECONDS = st.one_of(st.sampled_from([0, 1, -1, 1_750_000_000, 253402300799, 253402300800, -62135596800,
                                        -62135596801, 2**63 - 1, -(2**63)]), st.integers(-(2**63), 2**63 - 1))
HINTS = {
    P + "GetRackStateRequest.rack_id": st.sampled_from(RACK_IDS),
    P + "GetComponentStateRequest.component_id": st.sampled_from(COMP_IDS),
    P + "GetHistoryRequest.entity_id": IDS,
    P + "GetHistoryRequest.max_points": st.integers(0, 200_000),
    P + "WhatIfComponentFailureRequest.component_ids": st.sampled_from(COMP_IDS),
    P + "RackList.rack_ids": st.sampled_from(RACK_IDS),
    P + "GpuList.gpu_ids": st.integers(0, 300),
    P + "PlanCurtailmentRequest.limit_kw": st.floats(0, 2e4),
    P + "PlanCurtailmentRequest.duration_s": st.floats(0, 1e5),
    P + "WhatIfPowerCapRequest.cap_w": st.floats(0, 1000),
    "google.protobuf.Timestamp.seconds": TS_SECONDS,
    "google.protobuf.Timestamp.nanos": st.integers(-(10**9), 10**9),
}
RPCS = {
    "GetSiteState": pb.GetSiteStateRequest,
    "GetRackState": pb.GetRackStateRequest,
    "GetComponentState": pb.GetComponentStateRequest,
    "GetHistory": pb.GetHistoryRequest,
    "PlanCurtailment": pb.PlanCurtailmentRequest,
    "WhatIfPowerCap": pb.WhatIfPowerCapRequest,
    "WhatIfComponentFailure": pb.WhatIfComponentFailureRequest,
}


@pytest.fixture(scope="module", autouse=True)
def _close_loop():
    yield
    _LOOP.run_until_complete(_LOOP.shutdown_asyncgens())
    _LOOP.run_until_complete(_LOOP.shutdown_default_executor())  # heavy RPCs ran in worker threads
    _LOOP.close()


def call(method: str, request) -> None:
    call_servicer(_LOOP, SERVICER, method, request, OK_CODES)


def _history(seconds: int) -> pb.GetHistoryRequest:
    req = pb.GetHistoryRequest(entity_id=SITE)
    req.start_time.seconds = seconds
    return req


@FUZZ
@given(st.sampled_from(sorted(RPCS)).flatmap(
    lambda m: st.tuples(st.just(m), messages(RPCS[m].DESCRIPTOR, HINTS, max_repeated=6))))
@example(("GetHistory", _history(2**63 - 1)))      # regression: answered INTERNAL (OverflowError)
@example(("GetHistory", _history(-(2**63))))
def test_decoded_requests_are_answered_or_refused_with_a_request_error(item) -> None:
    method, request = item
    tried(f"power_grpc_{method}")
    call(method, request)


@FUZZ
@given(st.sampled_from(sorted(RPCS)), st.binary(max_size=80))
def test_request_bytes_decode_or_fail_with_decode_error(method: str, raw: bytes) -> None:
    tried("power_grpc_bytes")
    try:
        request = RPCS[method].FromString(raw)
    except DecodeError:
        return
    call(method, request)
