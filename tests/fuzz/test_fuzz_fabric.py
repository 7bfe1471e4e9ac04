"""Fuzz: fabric gRPC request decoding (twin.fabric.adapters.codec, through FabricSimulationServicer) and
the fabric's Kafka inputs (codec.link_event, codec.port_samples).

Documented rejections: an undecodable request never reaches the servicer (gRPC answers it; here:
protobuf's DecodeError); a decoded request is answered or refused with a RequestError
(InvalidArgument / NotFound / FailedPrecondition / DeadlineExceeded), which the shared RpcHandler
maps to INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION or DEADLINE_EXCEEDED. INTERNAL (any other
exception inside the servicer) is a crash. link_event never raises; port_samples raises only
InvalidArgument.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from unittest import mock

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st

from twin.core.rpc import InvalidArgument
from twin.fabric.adapters import codec
from twin.fabric.adapters.repository import InMemoryStateStore
from twin.fabric.app import FabricApp, FabricConfig
from twin.fabric.v1 import fabric_pb2 as pb
from twin.telemetry.v1 import telemetry_pb2 as tpb

from ._support import FUZZ, messages, tried

F = "twin.fabric.v1."
HINTS = {
    F + "RankCount.n_ranks": st.integers(0, 80),
    F + "GpuList.gpu_ids": st.integers(0, 300),
    F + "Placement.job_id": st.sampled_from(["job-a", "job-range", "nope", ""]),
    F + "EstimateCollectiveRequest.size_bytes": st.integers(0, 1 << 51),
    F + "EstimateBatchRequest.size_bytes": st.integers(0, 1 << 51),
    F + "PlacementQuestion.size_bytes": st.integers(0, 1 << 51),
    F + "SweepSizesRequest.min_bytes": st.integers(0, 1 << 51),
    F + "SweepSizesRequest.max_bytes": st.integers(0, 1 << 51),
    F + "SweepSizesRequest.steps_per_doubling": st.integers(0, 64),
    F + "ModelSpec.layers": st.integers(0, 200),
    F + "ModelSpec.hidden_size": st.integers(0, 1 << 16),
    F + "ModelSpec.sequence_length": st.integers(0, 1 << 16),
    F + "ModelSpec.parameters": st.floats(0, 1e13),
    F + "Parallelism.data_parallel": st.integers(0, 64),
    F + "Parallelism.tensor_parallel": st.integers(0, 16),
    F + "Parallelism.pipeline_parallel": st.integers(0, 16),
    F + "Parallelism.expert_parallel": st.integers(0, 16),
    F + "MoeCase.tokens_per_rank": st.integers(0, 1 << 25),
    F + "MoeCase.hidden_size": st.integers(0, 1 << 21),
    F + "MoeCase.top_k": st.integers(0, 80),
    F + "MoeCase.num_experts": st.integers(0, 1024),
    F + "MoeCase.max_nodes_per_token": st.integers(0, 64),
}
OK_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.DEADLINE_EXCEEDED}


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code, self.details = code, details


class Context:
    """The two ServicerContext methods RpcHandler uses."""

    def time_remaining(self) -> float:
        return 30.0

    async def abort(self, code: grpc.StatusCode, details: str):
        raise Aborted(code, details)


_LOOP = asyncio.new_event_loop()


def _app() -> FabricApp:
    async def build():
        cfg = FabricConfig(kafka_bootstrap="unused:1", database_url="unused", facility="dgx-h100-su",
                           grpc_host="127.0.0.1", grpc_port=0, consume=False)
        app = FabricApp(cfg, jobs={"job-a": list(range(0, 64, 2)), "job-range": ["0-15"]})
        # The servicer is called directly: no grpc.aio server (it would bind grpc's poller to this loop).
        with mock.patch("twin.fabric.app.fabric_grpc_server", lambda *a, **k: None):
            app.build(InMemoryStateStore())
        return app

    return _LOOP.run_until_complete(build())


APP = _app()
SERVICER = APP.servicer


@pytest.fixture(scope="module", autouse=True)
def _close_loop():
    yield
    _LOOP.run_until_complete(_LOOP.shutdown_asyncgens())
    _LOOP.run_until_complete(_LOOP.shutdown_default_executor())  # heavy RPCs ran in worker threads
    _LOOP.close()
RPCS = {
    "EstimateCollective": pb.EstimateCollectiveRequest,
    "EstimateBatch": pb.EstimateBatchRequest,
    "EstimatePlacements": pb.EstimatePlacementsRequest,
    "SweepSizes": pb.SweepSizesRequest,
    "EstimateTrainingStep": pb.EstimateTrainingStepRequest,
    "GetFabricState": pb.GetFabricStateRequest,
    "EstimateMoe": pb.EstimateMoeRequest,
}


def call(method: str, request) -> None:
    try:
        response = _LOOP.run_until_complete(getattr(SERVICER, method)(request, Context()))
    except Aborted as exc:
        assert exc.code in OK_CODES, f"{method} answered {exc.code.name}: {exc.details}"
        assert exc.details
        return
    response.SerializeToString()


# Mostly-valid requests, so the fuzz reaches the simulator and not only the first field check.
COLLECTIVE = st.integers(1, 7)
SIZE = st.one_of(st.integers(1, 1 << 50), st.sampled_from([1, 8, 1 << 20, 1 << 30, 1 << 50]))


@st.composite
def placements(draw) -> pb.Placement:
    kind = draw(st.sampled_from(["ranks", "gpus", "job"]))
    if kind == "ranks":
        return pb.Placement(ranks=pb.RankCount(n_ranks=draw(st.integers(1, 300)), policy=draw(st.integers(0, 2))))
    if kind == "gpus":
        return pb.Placement(gpus=pb.GpuList(gpu_ids=draw(st.lists(st.integers(0, 260), min_size=1, max_size=24))))
    return pb.Placement(job_id=draw(st.sampled_from(["job-a", "job-range", "job-x"])))


@st.composite
def assumed_links(draw) -> list[pb.LinkHealth]:
    """What-if link states: mostly the preset's real uplinks, leaves, spines and NICs (so the fuzz reaches the
    per-request simulator), sometimes unknown ids or capacities outside [0, 1]."""
    ids = st.sampled_from(["leaf-r0-g0/spine0", "leaf-r1-g0", "spine0", "su1-0000-n00/nic0", "nope", ""])
    caps = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(allow_nan=True, allow_infinity=True))
    return [pb.LinkHealth(link_id=draw(ids), capacity_fraction=draw(caps), flapping=draw(st.booleans()))
            for _ in range(draw(st.integers(0, 3)))]


@st.composite
def valid_ish(draw, method: str):
    if method == "EstimateCollective":
        return pb.EstimateCollectiveRequest(collective=draw(COLLECTIVE), size_bytes=draw(SIZE),
                                            placement=draw(placements()))
    if method == "EstimateBatch":
        n = draw(st.integers(1, 8))
        return pb.EstimateBatchRequest(collectives=draw(st.lists(COLLECTIVE, min_size=n, max_size=n)),
                                       size_bytes=draw(st.lists(SIZE, min_size=n, max_size=n)),
                                       placement=draw(placements()))
    if method == "EstimatePlacements":
        entries = []
        for _ in range(draw(st.integers(0, 4))):
            n = draw(st.integers(1, 6))
            entries.append(pb.PlacementQuestion(placement=draw(placements()),
                                                collectives=draw(st.lists(COLLECTIVE, min_size=n, max_size=n)),
                                                size_bytes=draw(st.lists(SIZE, min_size=n, max_size=n))))
        return pb.EstimatePlacementsRequest(entries=entries, nccl_version=draw(st.sampled_from(["", "2.21.5", "x"])),
                                            assumed_links=draw(assumed_links()))
    if method == "SweepSizes":
        lo = draw(st.integers(1, 1 << 30))
        return pb.SweepSizesRequest(collective=draw(COLLECTIVE), min_bytes=lo, max_bytes=draw(st.integers(lo, 1 << 50)),
                                    steps_per_doubling=draw(st.integers(0, 8)), placement=draw(placements()))
    if method == "EstimateTrainingStep":
        small = st.integers(0, 16)
        model = pb.ModelSpec(parameters=draw(st.floats(0, 2e12)), layers=draw(st.integers(0, 128)),
                             hidden_size=draw(st.integers(0, 16384)), sequence_length=draw(st.integers(0, 32768)),
                             micro_batch_size=draw(small), bytes_per_value=draw(st.integers(0, 4)),
                             moe_layers=draw(st.integers(0, 128)), micro_batches_per_step=draw(small),
                             grad_bytes=draw(st.integers(0, 4)), moe_top_k=draw(st.integers(0, 8)))
        par = pb.Parallelism(data_parallel=draw(small), tensor_parallel=draw(st.integers(0, 8)),
                             pipeline_parallel=draw(st.integers(0, 8)), expert_parallel=draw(st.integers(0, 8)),
                             sequence_parallel=draw(st.booleans()), distributed_optimizer=draw(st.booleans()))
        req = pb.EstimateTrainingStepRequest(model=model, parallelism=par)
        if draw(st.booleans()):
            req.placement.CopyFrom(draw(placements()))
        return req
    if method == "EstimateMoe":
        cases = [pb.MoeCase(kernel=draw(st.integers(0, 4)), tokens_per_rank=draw(st.integers(0, 1 << 20)),
                            hidden_size=draw(st.sampled_from([0, 1, 127, 128, 4096, 7168])),
                            top_k=draw(st.integers(0, 66)), num_experts=draw(st.sampled_from([0, 1, 8, 64, 256, 288])),
                            dispatch_precision=draw(st.integers(0, 3)), combine_precision=draw(st.integers(0, 3)),
                            max_nodes_per_token=draw(st.integers(0, 40)))
                 for _ in range(draw(st.integers(0, 4)))]
        return pb.EstimateMoeRequest(cases=cases, placement=draw(placements()))
    return pb.GetFabricStateRequest(include_healthy=draw(st.booleans()))


def requests(method: str):
    return st.one_of(messages(RPCS[method].DESCRIPTOR, HINTS, max_repeated=8), valid_ish(method))


@FUZZ
@given(st.sampled_from(sorted(RPCS)).flatmap(lambda m: st.tuples(st.just(m), requests(m))))
def test_decoded_requests_are_answered_or_refused_with_a_request_error(item) -> None:
    method, request = item
    tried(f"grpc_{method}")
    call(method, request)


@FUZZ
@given(st.sampled_from(sorted(RPCS)), st.binary(max_size=120))
def test_request_bytes_decode_or_fail_with_decode_error(method: str, raw: bytes) -> None:
    tried("grpc_bytes")
    try:
        request = RPCS[method].FromString(raw)
    except DecodeError:
        return
    call(method, request)


@FUZZ
@given(messages(pb.LinkEvent.DESCRIPTOR), st.sampled_from([None, datetime(2026, 1, 2, tzinfo=UTC)]))
def test_link_event_never_raises(msg, fallback) -> None:
    tried("fabric_link_event")
    event = codec.link_event(msg, fallback)
    assert isinstance(event.time_s, float) and isinstance(event.kind, int)


@FUZZ
@given(messages(tpb.TelemetrySamples.DESCRIPTOR), st.sampled_from([None, datetime(2026, 1, 2, tzinfo=UTC)]))
def test_port_samples_only_raises_invalid_argument(msg, fallback) -> None:
    tried("fabric_port_samples")
    try:
        samples = codec.port_samples(msg, fallback)
    except InvalidArgument as exc:
        assert exc.field.startswith("batch.")
        return
    assert len(samples.port_ids) == samples.tx_bytes.size == samples.rx_bytes.size
