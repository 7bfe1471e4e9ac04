"""EstimatePlacements (`FabricSimulator.estimate_placements`): many placements in one request, each entry's answer
equal, field by field, to EstimateBatch's for that placement alone (under a live state with a failed NIC, a failed
leaf and busy uplinks, so the placements' summaries differ), in any entry order and chunking; the request limits
answer INVALID_ARGUMENT naming the offending field. Over real gRPC: tests/integration/test_fabric_placements_grpc.py."""

from __future__ import annotations

import numpy as np
import pytest

from twin.core.rpc import Deadline, DeadlineExceeded
from twin.fabric.adapters import codec
from twin.fabric.domain import COLLECTIVES, LinkState, preset
from twin.fabric.simulation import (
    MAX_PLACEMENT_RANKS,
    FabricSimulator,
    InvalidArgument,
    JobRegistry,
    LiveView,
    NotFound,
)
from twin.fabric.v1 import fabric_pb2 as pb

SIZES = (1, 4096, 65_537, 1 << 20, (1 << 30) + 3)
ENUMS = [codec.collective_enum(c) for c in range(len(COLLECTIVES))]


def _sim(chunk_entries: int = 8192) -> FabricSimulator:
    topo = preset("dgx-h100")
    n = topo.n_gpus
    base = LinkState.healthy(topo)
    util = np.random.default_rng(1).uniform(0.0, 0.6, base.uplink_capacity.shape)
    state = base.with_failed_nic(3).with_failed_leaf(topo, 1).with_utilization(util)
    jobs = JobRegistry(n)
    jobs.register("j", ["64-79"])
    return FabricSimulator(topo, lambda: LiveView(7, state), jobs, chunk_entries=chunk_entries)


def _placements(n_gpus: int) -> list[pb.Placement]:
    rng = np.random.default_rng(5)
    out = [pb.Placement(gpus=pb.GpuList(gpu_ids=sorted(rng.choice(n_gpus, size=k, replace=False).tolist())))
           for k in (16, 16, 16, 2, 8, 64, 64, 1)]
    out.append(pb.Placement(gpus=pb.GpuList(gpu_ids=[40, 3, 17, 200])))  # not ascending
    out.append(pb.Placement(ranks=pb.RankCount(n_ranks=16, policy=pb.PACKING_POLICY_SPREAD)))
    out.append(pb.Placement(job_id="j"))
    return out


def _request(placements, rng) -> pb.EstimatePlacementsRequest:
    req = pb.EstimatePlacementsRequest()
    for p in placements:
        k = int(rng.integers(1, 12))
        req.entries.add(placement=p, collectives=rng.choice(ENUMS, size=k).tolist(),
                        size_bytes=rng.choice(SIZES, size=k).tolist())
    return req


def _batch(sim, entry: pb.PlacementQuestion, nccl: str = "") -> pb.EstimateBatchResponse:
    breq = pb.EstimateBatchRequest(collectives=entry.collectives, size_bytes=entry.size_bytes,
                                   placement=entry.placement, nccl_version=nccl)
    coll, sizes, preq = codec.estimate_batch_request(breq, 100_000)
    table = sim.estimate(coll, sim.check_sizes(sizes, "size_bytes"), preq, nccl_version=codec.nccl_version(nccl))
    resp = pb.EstimateBatchResponse(n_ranks=table.n_ranks, n_nodes=table.n_nodes)
    codec.estimates_to_proto(table, resp.estimates)
    return resp


@pytest.mark.parametrize("chunk_entries,nccl", [(8192, ""), (7, "2.27.3"), (1, "")])
def test_each_entry_equals_estimate_batch_for_its_placement(chunk_entries, nccl):
    sim = _sim(chunk_entries)
    rng = np.random.default_rng(chunk_entries)
    req = _request(_placements(sim.topology.n_gpus), rng)
    req.nccl_version = nccl
    resp = codec.estimate_placements_response(
        sim.estimate_placements(codec.estimate_placements_request(req, 100_000), None, codec.nccl_version(nccl)))
    assert len(resp.entries) == len(req.entries)
    for entry, got in zip(req.entries, resp.entries, strict=True):
        want = _batch(sim, entry, nccl)
        assert (got.n_ranks, got.n_nodes) == (want.n_ranks, want.n_nodes)
        assert list(got.estimates) == list(want.estimates)


def test_the_live_state_enters_every_placement():
    topo = preset("dgx-h100")
    nic3 = LinkState.healthy(topo).with_failed_nic(3)
    sim = FabricSimulator(topo, lambda: LiveView(1, nic3), JobRegistry(topo.n_gpus))
    healthy = FabricSimulator(topo, lambda: LiveView(0, LinkState.healthy(topo)), sim.jobs)
    req = pb.EstimatePlacementsRequest()
    for ids in ([0, 1, 2, 3, 8, 9, 10, 11], [16, 17, 18, 19, 24, 25, 26, 27]):  # the first holds GPU 3's failed NIC
        req.entries.add(placement=pb.Placement(gpus=pb.GpuList(gpu_ids=ids)), collectives=[pb.COLLECTIVE_ALL_REDUCE],
                        size_bytes=[1 << 30])
    live = sim.estimate_placements(codec.estimate_placements_request(req, 100_000))
    base = healthy.estimate_placements(codec.estimate_placements_request(req, 100_000))
    assert live[0].result.time_s[0] > base[0].result.time_s[0]
    assert live[1].result.time_s[0] == base[1].result.time_s[0]


def _entry(req, ids, k=1):
    req.entries.add(placement=pb.Placement(gpus=pb.GpuList(gpu_ids=ids)), collectives=[pb.COLLECTIVE_ALL_REDUCE] * k,
                    size_bytes=[1024] * k)


@pytest.mark.parametrize("mutate,field", [
    (lambda r: r.entries[1].placement.gpus.gpu_ids.append(0), "entries[1].placement.gpus.gpu_ids"),
    (lambda r: r.entries[2].placement.gpus.gpu_ids.append(10**6), "entries[2].placement.gpus.gpu_ids"),
    (lambda r: r.entries[2].size_bytes.__setitem__(0, 0), "entries[2].size_bytes"),
    (lambda r: r.entries[1].size_bytes.append(5), "entries[1].collectives"),
    (lambda r: r.entries[0].collectives.__setitem__(0, pb.COLLECTIVE_UNSPECIFIED), "entries[0].collectives[0]"),
    (lambda r: r.entries[1].ClearField("placement"), "entries[1].placement"),
    (lambda r: r.entries[1].placement.__setattr__("job_id", ""), "entries[1].placement.job_id"),
])
def test_bad_entries_name_their_field(mutate, field):
    sim = _sim()
    req = pb.EstimatePlacementsRequest()
    for ids in ([0, 1], [0, 8], [5, 6, 7]):
        _entry(req, ids)
    mutate(req)
    with pytest.raises(InvalidArgument) as err:
        sim.estimate_placements(codec.estimate_placements_request(req, 100_000))
    assert err.value.field == field


def test_limits():
    sim = _sim()
    with pytest.raises(InvalidArgument) as err:
        sim.estimate_placements([])
    assert err.value.field == "entries"
    req = pb.EstimatePlacementsRequest()
    for k in range(3):
        _entry(req, [k, k + 8], k=4)
    with pytest.raises(InvalidArgument) as err:  # 12 pairs over a limit of 10: the entry reaching it is named
        codec.estimate_placements_request(req, 10)
    assert err.value.field == "entries[2].size_bytes"
    req = pb.EstimatePlacementsRequest()
    big = list(range(sim.topology.n_gpus))
    for _ in range(MAX_PLACEMENT_RANKS // len(big) + 1):
        req.entries.add(placement=pb.Placement(ranks=pb.RankCount(n_ranks=len(big))),
                        collectives=[pb.COLLECTIVE_ALL_REDUCE], size_bytes=[1])
    with pytest.raises(InvalidArgument) as err:
        sim.estimate_placements(codec.estimate_placements_request(req, 100_000))
    assert err.value.field == f"entries[{MAX_PLACEMENT_RANKS // len(big)}].placement"
    req = pb.EstimatePlacementsRequest()
    _entry(req, [0, 1])
    req.entries.add(placement=pb.Placement(job_id="nope"), collectives=[pb.COLLECTIVE_ALL_REDUCE], size_bytes=[1])
    with pytest.raises(NotFound) as err:
        sim.estimate_placements(codec.estimate_placements_request(req, 100_000))
    assert err.value.field == "entries[1].placement.job_id"


def test_the_deadline_is_checked_between_chunks():
    """A deadline that passes during the work stops it between chunks (DeadlineExceeded), not after every chunk."""
    sim = _sim(chunk_entries=4)
    req = _request(_placements(sim.topology.n_gpus), np.random.default_rng(2))
    entries = codec.estimate_placements_request(req, 100_000)
    ticks = iter(range(10**6))
    deadline = Deadline(5.0, clock=lambda: float(next(ticks)))  # passes after a few checks
    before = sim.entries_estimated
    with pytest.raises(DeadlineExceeded):
        sim.estimate_placements(entries, deadline)
    done = sim.entries_estimated - before
    assert 0 < done < sum(len(e.size_bytes) for e in req.entries)
