"""FabricSimulationService through the generated stubs against an in-process grpc.aio server.

The server is the real composition root (FabricApp) in gRPC-only mode (FABRIC_CONSUME=0) on a free
127.0.0.1 port, facility dgx-h100-su (256 GPUs, 32 nodes, 8 GPUs per NVLink domain).
"""

from __future__ import annotations

import asyncio
import math

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from twin.fabric.adapters.grpc_api import SERVICE_NAME
from twin.fabric.app import FabricApp, FabricConfig
from twin.fabric.v1 import fabric_pb2 as pb
from twin.fabric.v1 import fabric_pb2_grpc as pb_grpc

GiB = 1 << 30
JOB_GPUS = list(range(0, 64, 2))  # 32 GPUs: every other GPU of the first 8 nodes


@pytest.fixture(scope="module")
async def server():
    cfg = FabricConfig(kafka_bootstrap="unused:1", database_url="unused", facility="dgx-h100-su",
                       grpc_host="127.0.0.1", grpc_port=0, consume=False)
    app = FabricApp(cfg, jobs={"job-a": JOB_GPUS, "job-range": ["0-15"]})
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    await asyncio.wait_for(app.ready.wait(), 30)
    yield app
    stop.set()
    await asyncio.wait_for(task, 30)


@pytest.fixture(scope="module")
async def channel(server):
    # a maximal batch answer (~7 MB) is larger than gRPC's default 4 MiB receive limit
    options = [("grpc.max_receive_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=options) as ch:
        yield ch


@pytest.fixture
def stub(channel):
    return pb_grpc.FabricSimulationServiceStub(channel)


def ranks(n: int, policy=pb.PACKING_POLICY_PACK) -> pb.Placement:
    return pb.Placement(ranks=pb.RankCount(n_ranks=n, policy=policy))


def gpus(ids) -> pb.Placement:
    return pb.Placement(gpus=pb.GpuList(gpu_ids=list(ids)))


def check_consistent(e: pb.CollectiveEstimate, n: int) -> None:
    """The relations every estimate must satisfy (nccl-tests conventions)."""
    assert e.time_s > 0
    assert e.time_s == pytest.approx(e.latency_s + e.bandwidth_s, rel=1e-9)
    assert e.latency_s > 0 and e.bandwidth_s > 0
    assert e.algbw_gbps == pytest.approx(e.size_bytes / e.time_s / 1e9, rel=1e-9)
    factor = {pb.COLLECTIVE_ALL_REDUCE: 2 * (n - 1) / n, pb.COLLECTIVE_ALL_GATHER: (n - 1) / n,
              pb.COLLECTIVE_REDUCE_SCATTER: (n - 1) / n, pb.COLLECTIVE_ALLTOALL: (n - 1) / n}.get(e.collective, 1.0)
    assert e.busbw_gbps == pytest.approx(e.algbw_gbps * factor, rel=1e-9)
    assert e.algorithm in {"ring", "tree", "nvls", "nvls_tree", "pairwise"}
    assert e.protocol in {"LL", "LL128", "Simple"}


async def test_estimate_collective_all_reduce_8_gpus_matches_the_dgx_anchor(stub):
    resp = await stub.EstimateCollective(pb.EstimateCollectiveRequest(
        collective=pb.COLLECTIVE_ALL_REDUCE, size_bytes=GiB, placement=ranks(8)))
    assert (resp.n_ranks, resp.n_nodes) == (8, 1)
    e = resp.estimate
    assert e.collective == pb.COLLECTIVE_ALL_REDUCE and e.size_bytes == GiB
    check_consistent(e, 8)
    # DESIGN §8 anchor: DGX H100 8-GPU all-reduce of 1 GiB ~4.0 ms, busbw ~466 GB/s
    assert 3.0e-3 < e.time_s < 5.5e-3
    assert 350 < e.busbw_gbps < 520


@pytest.mark.parametrize("collective", [c for c in pb.Collective.values() if c != pb.COLLECTIVE_UNSPECIFIED])
async def test_every_collective_is_consistent_across_nodes(stub, collective):
    resp = await stub.EstimateCollective(pb.EstimateCollectiveRequest(
        collective=collective, size_bytes=64 << 20, placement=ranks(64, pb.PACKING_POLICY_SPREAD)))
    assert resp.n_ranks == 64 and resp.n_nodes == 8
    check_consistent(resp.estimate, 64)


async def test_small_messages_are_latency_bound_and_large_bandwidth_bound(stub):
    small = (await stub.EstimateCollective(pb.EstimateCollectiveRequest(
        collective=pb.COLLECTIVE_ALL_REDUCE, size_bytes=8, placement=ranks(128)))).estimate
    large = (await stub.EstimateCollective(pb.EstimateCollectiveRequest(
        collective=pb.COLLECTIVE_ALL_REDUCE, size_bytes=4 * GiB, placement=ranks(128)))).estimate
    assert small.latency_s > 10 * small.bandwidth_s
    assert large.bandwidth_s > 10 * large.latency_s
    assert small.protocol in ("LL", "LL128")


async def test_batch_equals_single_estimates_in_order(stub):
    colls = [pb.COLLECTIVE_ALL_REDUCE, pb.COLLECTIVE_ALL_GATHER, pb.COLLECTIVE_ALLTOALL, pb.COLLECTIVE_ALL_REDUCE]
    sizes = [1 << 10, 1 << 20, 1 << 24, 1 << 30]
    batch = await stub.EstimateBatch(pb.EstimateBatchRequest(collectives=colls, size_bytes=sizes, placement=ranks(32)))
    assert (batch.n_ranks, batch.n_nodes) == (32, 4)
    assert [e.collective for e in batch.estimates] == colls
    assert [e.size_bytes for e in batch.estimates] == sizes
    for c, s, e in zip(colls, sizes, batch.estimates, strict=True):
        single = await stub.EstimateCollective(pb.EstimateCollectiveRequest(collective=c, size_bytes=s,
                                                                            placement=ranks(32)))
        assert single.estimate == e
        check_consistent(e, 32)


async def test_sweep_is_geometric_and_time_never_decreases(stub):
    resp = await stub.SweepSizes(pb.SweepSizesRequest(collective=pb.COLLECTIVE_ALL_REDUCE, min_bytes=8, max_bytes=GiB,
                                                      steps_per_doubling=2, placement=ranks(256)))
    sizes = [e.size_bytes for e in resp.estimates]
    assert sizes[0] == 8 and sizes[-1] == GiB
    assert len(sizes) == 2 * int(math.log2(GiB / 8)) + 1
    assert sizes == sorted(set(sizes))
    times = np.array([e.time_s for e in resp.estimates])
    assert (np.diff(times) >= 0).all()
    assert resp.n_ranks == 256 and resp.n_nodes == 32
    for e in resp.estimates:
        check_consistent(e, 256)


async def test_job_placement_equals_explicit_gpu_list(stub):
    by_job = await stub.EstimateCollective(pb.EstimateCollectiveRequest(
        collective=pb.COLLECTIVE_ALL_REDUCE, size_bytes=1 << 26, placement=pb.Placement(job_id="job-a")))
    by_ids = await stub.EstimateCollective(pb.EstimateCollectiveRequest(
        collective=pb.COLLECTIVE_ALL_REDUCE, size_bytes=1 << 26, placement=gpus(JOB_GPUS)))
    assert by_job == by_ids
    assert (by_job.n_ranks, by_job.n_nodes) == (32, 8)
    ranged = await stub.EstimateCollective(pb.EstimateCollectiveRequest(
        collective=pb.COLLECTIVE_ALL_REDUCE, size_bytes=1 << 26, placement=pb.Placement(job_id="job-range")))
    assert ranged.n_ranks == 16


async def test_unknown_job_is_not_found(stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.EstimateCollective(pb.EstimateCollectiveRequest(
            collective=pb.COLLECTIVE_ALL_REDUCE, size_bytes=1024, placement=pb.Placement(job_id="nope")))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details().startswith("placement.job_id")


async def test_training_step_breakdown_sums_and_packs_by_default(stub):
    req = pb.EstimateTrainingStepRequest(
        model=pb.ModelSpec(parameters=70e9, layers=80, hidden_size=8192, sequence_length=4096, micro_batch_size=1,
                           bytes_per_value=2, micro_batches_per_step=8),
        parallelism=pb.Parallelism(data_parallel=4, tensor_parallel=8, pipeline_parallel=8))
    resp = await stub.EstimateTrainingStep(req)
    assert resp.n_ranks == 256 and resp.n_nodes == 32
    kinds = {b.kind for b in resp.breakdown}
    assert kinds == {"tp", "dp", "pp"}
    assert resp.comm_time_s == pytest.approx(sum(b.time_s for b in resp.breakdown), rel=1e-12)
    for b in resp.breakdown:
        assert b.time_s == pytest.approx(b.calls * b.time_per_call_s, rel=1e-12)
        assert b.bytes_per_step == b.calls * b.size_bytes
    tp = next(b for b in resp.breakdown if b.kind == "tp")
    assert tp.group_ranks == 8 and tp.collective == pb.COLLECTIVE_ALL_REDUCE and tp.calls == 4 * 10 * 8
    # spreading the same job over nodes can only make its TP traffic slower (it leaves NVLink)
    spread = await stub.EstimateTrainingStep(pb.EstimateTrainingStepRequest(
        model=req.model, parallelism=pb.Parallelism(data_parallel=2, tensor_parallel=8, pipeline_parallel=2),
        placement=ranks(32, pb.PACKING_POLICY_SPREAD)))
    packed = await stub.EstimateTrainingStep(pb.EstimateTrainingStepRequest(
        model=pb.ModelSpec(parameters=70e9, layers=80, hidden_size=8192, sequence_length=4096,
                           micro_batches_per_step=8),
        parallelism=pb.Parallelism(data_parallel=2, tensor_parallel=8, pipeline_parallel=2)))
    assert spread.comm_time_s >= packed.comm_time_s


async def test_get_fabric_state_healthy(stub):
    resp = await stub.GetFabricState(pb.GetFabricStateRequest())
    assert resp.state.site_id == "su-h100"
    assert resp.state.links_down == 0 and len(resp.state.links) == 0
    full = await stub.GetFabricState(pb.GetFabricStateRequest(include_healthy=True))
    assert len(full.state.links) == 128 + 256  # uplinks + NICs
    assert all(link.capacity_fraction == 1.0 for link in full.state.links)


async def test_health_serving_per_service(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE_NAME):
        resp = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_the_service(channel):
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def requests():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names = []
    async for resp in refl.ServerReflectionInfo(requests()):
        names += [s.name for s in resp.list_services_response.service]
    assert SERVICE_NAME == "twin.fabric.v1.FabricSimulationService"
    assert SERVICE_NAME in names and "grpc.health.v1.Health" in names


# -- invalid requests: INVALID_ARGUMENT naming the field -------------------------------------------

def _ec(collective=pb.COLLECTIVE_ALL_REDUCE, size=1024, placement=None):
    return pb.EstimateCollectiveRequest(collective=collective, size_bytes=size,
                                        placement=placement if placement is not None else ranks(8))


INVALID = [
    ("EstimateCollective", _ec(collective=pb.COLLECTIVE_UNSPECIFIED), "collective"),
    ("EstimateCollective", _ec(size=0), "size_bytes"),
    ("EstimateCollective", _ec(size=(1 << 50) + 1), "size_bytes"),
    ("EstimateCollective", _ec(placement=pb.Placement()), "placement"),
    ("EstimateCollective", _ec(placement=ranks(0)), "placement.ranks.n_ranks"),
    ("EstimateCollective", _ec(placement=ranks(257)), "placement.ranks.n_ranks"),
    ("EstimateCollective", _ec(placement=gpus([])), "placement.gpus.gpu_ids"),
    ("EstimateCollective", _ec(placement=gpus([0, 1, 256])), "placement.gpus.gpu_ids"),
    ("EstimateCollective", _ec(placement=gpus([0, 1, 1])), "placement.gpus.gpu_ids"),
    ("EstimateCollective", _ec(placement=pb.Placement(job_id="")), "placement.job_id"),
    ("EstimateBatch", pb.EstimateBatchRequest(collectives=[], size_bytes=[], placement=ranks(8)), "size_bytes"),
    ("EstimateBatch", pb.EstimateBatchRequest(collectives=[1], size_bytes=[8, 16], placement=ranks(8)), "collectives"),
    ("EstimateBatch", pb.EstimateBatchRequest(collectives=[1, 0], size_bytes=[8, 16], placement=ranks(8)),
     "collectives[1]"),
    ("EstimateBatch", pb.EstimateBatchRequest(collectives=[1, 1], size_bytes=[8, 0], placement=ranks(8)),
     "size_bytes[1]"),
    ("EstimateBatch", pb.EstimateBatchRequest(collectives=[1] * 100_001, size_bytes=[8] * 100_001, placement=ranks(8)),
     "size_bytes"),
    ("SweepSizes", pb.SweepSizesRequest(collective=1, min_bytes=1 << 20, max_bytes=1 << 10, placement=ranks(8)),
     "max_bytes"),
    ("SweepSizes", pb.SweepSizesRequest(collective=1, min_bytes=0, max_bytes=1 << 10, placement=ranks(8)), "min_bytes"),
    ("SweepSizes", pb.SweepSizesRequest(collective=1, min_bytes=1, max_bytes=1 << 40, steps_per_doubling=1000,
                                        placement=ranks(8)), "steps_per_doubling"),
    ("SweepSizes", pb.SweepSizesRequest(collective=0, min_bytes=1, max_bytes=8, placement=ranks(8)), "collective"),
    ("EstimateTrainingStep", pb.EstimateTrainingStepRequest(
        model=pb.ModelSpec(parameters=0, layers=8, hidden_size=8, sequence_length=8)), "model.parameters"),
    ("EstimateTrainingStep", pb.EstimateTrainingStepRequest(
        model=pb.ModelSpec(parameters=1e9, layers=8, hidden_size=8, sequence_length=8),
        parallelism=pb.Parallelism(data_parallel=64, tensor_parallel=8)), "parallelism"),
    ("EstimateTrainingStep", pb.EstimateTrainingStepRequest(
        model=pb.ModelSpec(parameters=1e9, layers=8, hidden_size=8, sequence_length=8),
        parallelism=pb.Parallelism(data_parallel=4, expert_parallel=3)), "parallelism.expert_parallel"),
    ("EstimateTrainingStep", pb.EstimateTrainingStepRequest(
        model=pb.ModelSpec(parameters=1e9, layers=8, hidden_size=8, sequence_length=8),
        parallelism=pb.Parallelism(data_parallel=8), placement=ranks(16)), "placement"),
    ("EstimateMoe", pb.EstimateMoeRequest(placement=ranks(64)), "cases"),
    ("EstimateMoe", pb.EstimateMoeRequest(cases=[pb.MoeCase(tokens_per_rank=1, hidden_size=8, top_k=1,
                                                            num_experts=64)], placement=ranks(64)), "cases[0].kernel"),
    ("EstimateMoe", pb.EstimateMoeRequest(cases=[pb.MoeCase(kernel=1, tokens_per_rank=1, hidden_size=8, top_k=1,
                                                            num_experts=64), pb.MoeCase(kernel=2, hidden_size=8, top_k=1,
                                                            num_experts=64)], placement=ranks(64)),
     "cases[1].tokens_per_rank"),
    ("EstimateMoe", pb.EstimateMoeRequest(cases=[pb.MoeCase(kernel=1, tokens_per_rank=1, hidden_size=8, top_k=65,
                                                            num_experts=128)], placement=ranks(64)), "cases[0].top_k"),
    ("EstimateMoe", pb.EstimateMoeRequest(cases=[pb.MoeCase(kernel=1, tokens_per_rank=1, hidden_size=8, top_k=8,
                                                            num_experts=100)], placement=ranks(64)),
     "cases[0].num_experts"),
    ("EstimateMoe", pb.EstimateMoeRequest(cases=[pb.MoeCase(kernel=3, tokens_per_rank=1, hidden_size=8, top_k=8,
                                                            num_experts=256, combine_precision=pb.MOE_PRECISION_FP8)],
                                          placement=ranks(64)), "cases[0].combine_precision"),
    ("EstimateMoe", pb.EstimateMoeRequest(cases=[pb.MoeCase(kernel=1, tokens_per_rank=1, hidden_size=8, top_k=1,
                                                            num_experts=8)], placement=ranks(0)),
     "placement.ranks.n_ranks"),
]


@pytest.mark.parametrize("method,request_msg,field", INVALID, ids=[f"{m}:{f}:{i}" for i, (m, _, f) in enumerate(INVALID)])
async def test_invalid_argument_names_the_field(stub, method, request_msg, field):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(stub, method)(request_msg)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert err.value.details().startswith(field + ":"), err.value.details()


# -- deadlines ---------------------------------------------------------------------------------------

MAX_BATCH = pb.EstimateBatchRequest(collectives=[pb.COLLECTIVE_ALL_REDUCE, pb.COLLECTIVE_ALLTOALL] * 50_000,
                                    size_bytes=[1 << (i % 40) for i in range(100_000)], placement=ranks(256))


async def test_maximal_batch_completes_within_a_normal_deadline(stub):
    resp = await stub.EstimateBatch(MAX_BATCH, timeout=60)
    assert len(resp.estimates) == 100_000
    assert resp.estimates[99_999].size_bytes == 1 << (99_999 % 40)


async def test_tiny_deadline_on_maximal_batch_is_deadline_exceeded(stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.EstimateBatch(MAX_BATCH, timeout=0.001)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


class _Aborted(Exception):
    pass


class FakeContext:
    """A servicer context whose deadline has already passed (server-side deadline handling)."""

    def __init__(self, remaining: float) -> None:
        self.remaining = remaining
        self.code = None
        self.details = None

    def time_remaining(self) -> float:
        return self.remaining

    async def abort(self, code, details):
        self.code, self.details = code, details
        raise _Aborted()


async def test_server_stops_work_once_the_deadline_passed(server):
    """Deterministic server side: with no time left the servicer answers DEADLINE_EXCEEDED and never
    starts the estimate (chunk-level stopping is covered by the next test)."""
    servicer = server.servicer
    before = server.simulator.entries_estimated
    ctx = FakeContext(0.0)
    with pytest.raises(_Aborted):
        await servicer.EstimateBatch(MAX_BATCH, ctx)
    assert ctx.code == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.sleep(0.2)  # give an (incorrectly) running worker time to show up in the counter
    assert server.simulator.entries_estimated == before


async def test_worker_checks_the_deadline_between_chunks(server):
    """Deterministic: a deadline that passes after the first chunk stops the estimate right there."""
    from twin.fabric.simulation import CHUNK_ENTRIES, Deadline, DeadlineExceeded, PlacementRequest

    ticks = iter([0.0, 0.5, 1.0, 2.0, 3.0])  # construction, placement check, before chunk 2, ...
    deadline = Deadline(1.0, clock=lambda: next(ticks))
    sim = server.simulator
    before = sim.entries_estimated
    sizes = np.full(100_000, 1 << 20, dtype=np.uint64)
    with pytest.raises(DeadlineExceeded):
        sim.estimate(np.zeros(100_000, dtype=np.int64), sizes, PlacementRequest(n_ranks=64), deadline)
    assert sim.entries_estimated - before == CHUNK_ENTRIES < 100_000
    # a caller that gave up (cancel) stops the worker the same way
    cancelled = Deadline(None)
    cancelled.cancel()
    with pytest.raises(DeadlineExceeded):
        sim.estimate(np.zeros(100_000, dtype=np.int64), sizes, PlacementRequest(n_ranks=64), cancelled)


async def test_nccl_version_selects_the_algorithms_that_version_has(stub):
    """NVLS arrived in NCCL 2.17: on the DGX H100 preset an 8-GPU all-reduce may use it with 2.27,
    never with 2.16; a malformed version is INVALID_ARGUMENT naming the field."""
    def req(version: str) -> pb.EstimateCollectiveRequest:
        return pb.EstimateCollectiveRequest(collective=pb.COLLECTIVE_ALL_REDUCE, size_bytes=1 << 30,
                                            placement=pb.Placement(ranks=pb.RankCount(n_ranks=8)),
                                            nccl_version=version)

    old = await stub.EstimateCollective(req("2.16.5"), timeout=10)
    new = await stub.EstimateCollective(req("v2.27.3-1"), timeout=10)
    assert not old.estimate.algorithm.startswith("nvls")
    assert new.estimate.time_s <= old.estimate.time_s
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.EstimateCollective(req("latest"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("nccl_version:")


# -- MoE dispatch / combine ----------------------------------------------------------------------------

def _moe(kernel, tokens=4096, **kw):
    return pb.MoeCase(kernel=kernel, tokens_per_rank=tokens, hidden_size=7168, top_k=8, num_experts=256,
                      dispatch_precision=kw.pop("dispatch", pb.MOE_PRECISION_FP8), max_nodes_per_token=4, **kw)


async def test_moe_answers_every_case_in_order_and_equals_the_core(stub, server):
    from twin.fabric.domain.moe import moe_times

    kernels = (pb.MOE_KERNEL_NCCL_ALLTOALL, pb.MOE_KERNEL_DEEPEP_NORMAL, pb.MOE_KERNEL_DEEPEP_LOW_LATENCY)
    resp = await stub.EstimateMoe(pb.EstimateMoeRequest(cases=[_moe(k) for k in kernels], placement=ranks(64)))
    assert (resp.ep_ranks, resp.n_nodes, resp.n_domains) == (64, 8, 8)
    topo = server.simulator.topology
    for k, name, e in zip(kernels, ("nccl_alltoall", "deepep_normal", "deepep_low_latency"), resp.estimates,
                          strict=True):
        core = moe_times(topo, name, 4096, 7168, 8, 256, 64, dispatch="fp8", combine="bf16", max_nodes_per_token=4)
        assert e.dispatch_time_s == pytest.approx(float(core.dispatch_s), rel=1e-12), k
        assert e.combine_time_s == pytest.approx(float(core.combine_s), rel=1e-12), k
        assert e.dispatch_network_bytes == round(float(core.dispatch_network_bytes))
    nccl, normal, ll = resp.estimates
    # DeepEP's normal kernels send a token once per remote node: fewer network bytes and less time than alltoall
    assert normal.dispatch_network_bytes < nccl.dispatch_network_bytes
    assert normal.dispatch_time_s < nccl.dispatch_time_s
    assert 1 < normal.domains_per_token <= 4 and 1 < normal.ranks_per_token <= 8


async def test_moe_job_placement_and_unknown_job(stub):
    resp = await stub.EstimateMoe(pb.EstimateMoeRequest(cases=[_moe(pb.MOE_KERNEL_DEEPEP_NORMAL)],
                                                        placement=pb.Placement(job_id="job-range")))
    assert resp.ep_ranks == 16 and resp.n_nodes == 2
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.EstimateMoe(pb.EstimateMoeRequest(cases=[_moe(1)], placement=pb.Placement(job_id="nope")))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
