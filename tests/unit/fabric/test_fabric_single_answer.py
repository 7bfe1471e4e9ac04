"""One EstimateCollective answer (the per-RPC path: `estimate_one` with a scalar size check, the core's
scalar path, the response built from Python scalars) equals the batch path's entry for the same
(collective, size, placement), field by field, including single-rank/zero-traffic answers ("none"), as
does a batch of one entry; both reject the same sizes with the same field-named errors."""

from __future__ import annotations

import numpy as np
import pytest

from twin.fabric.adapters import codec
from twin.fabric.domain import COLLECTIVES, LinkState, preset
from twin.fabric.simulation import (
    MAX_SIZE_BYTES,
    FabricSimulator,
    InvalidArgument,
    JobRegistry,
    LiveView,
    PlacementRequest,
)
from twin.fabric.v1 import fabric_pb2 as pb

SIZES = (1, 8, 4096, 65_537, 1 << 20, (1 << 30) + 3, 1 << 40, MAX_SIZE_BYTES)


@pytest.fixture(scope="module")
def sim() -> FabricSimulator:
    topo = preset("dgx-h100")
    state = LinkState.healthy(topo)
    return FabricSimulator(topo, lambda: LiveView(0, state), JobRegistry(topo.n_gpus))


@pytest.mark.parametrize("n_ranks,policy", [(1, pb.PACKING_POLICY_PACK), (8, pb.PACKING_POLICY_PACK),
                                            (24, pb.PACKING_POLICY_SPREAD), (256, pb.PACKING_POLICY_SPREAD)])
def test_single_answer_equals_batch_entry(sim, n_ranks, policy):
    placement = pb.Placement(ranks=pb.RankCount(n_ranks=n_ranks, policy=policy))
    enums = [codec.collective_enum(c) for c in range(len(COLLECTIVES))]
    batch = pb.EstimateBatchRequest(placement=placement, collectives=[e for e in enums for _ in SIZES],
                                    size_bytes=[s for _ in enums for s in SIZES])
    coll, sizes, preq = codec.estimate_batch_request(batch, 10_000)
    table = sim.estimate(coll, sim.check_sizes(sizes, "size_bytes"), preq)
    expected = pb.EstimateBatchResponse()
    codec.estimates_to_proto(table, expected.estimates)
    i = 0
    for enum in enums:
        for size in SIZES:
            req = pb.EstimateCollectiveRequest(collective=enum, size_bytes=size, placement=placement)
            c, s, p = codec.estimate_collective_one(req)
            resp = codec.one_estimate_response(sim.estimate_one(c, sim.check_size(s, "size_bytes"), p))
            assert resp.estimate == expected.estimates[i], (enum, size)
            assert (resp.n_ranks, resp.n_nodes) == (table.n_ranks, table.n_nodes)
            # a batch of one entry goes through the same scalar path and answers the same
            c1, s1, p1 = codec.estimate_batch_request(pb.EstimateBatchRequest(
                placement=placement, collectives=[enum], size_bytes=[size]), 10_000)
            one = sim.estimate(c1, sim.check_sizes(s1, "size_bytes"), p1)
            assert one.collective.shape == one.size_bytes.shape == one.result.time_s.shape == (1,)
            single = pb.EstimateBatchResponse()
            codec.estimates_to_proto(one, single.estimates)
            assert single.estimates[0] == expected.estimates[i], (enum, size)
            i += 1
    if n_ranks == 1:
        assert {e.algorithm for e in expected.estimates} == {"none"}
    else:
        assert "none" not in {e.algorithm for e in expected.estimates}


@pytest.mark.parametrize("size,message", [(0, "size_bytes: must be > 0"),
                                          (MAX_SIZE_BYTES + 1, f"size_bytes: {MAX_SIZE_BYTES + 1} exceeds")])
def test_single_size_rejected_like_a_batch_entry(size, message):
    with pytest.raises(InvalidArgument) as one:
        FabricSimulator.check_size(size, "size_bytes")
    assert str(one.value).startswith(message)
    with pytest.raises(InvalidArgument) as one:
        FabricSimulator.check_sizes(np.array([size], dtype=np.uint64), "size_bytes")
    assert str(one.value).startswith(message)
    with pytest.raises(InvalidArgument) as many:
        FabricSimulator.check_sizes(np.array([5, size], dtype=np.uint64), "size_bytes")
    assert str(many.value).startswith(message.replace("size_bytes:", "size_bytes[1]:"))


def test_repeated_answer_cached_until_the_live_state_changes():
    """The exact answer cache and the placement cache are keyed by the live state version: a repeated
    request is answered from the cache; once the link state changes (new version) the answer is the
    one a fresh simulator computes for the new state, not the cached one."""
    topo = preset("dgx-h100")
    healthy = LinkState.healthy(topo)
    views = [LiveView(0, healthy)]
    sim = FabricSimulator(topo, lambda: views[-1], JobRegistry(topo.n_gpus))
    preq = PlacementRequest(n_ranks=256, policy="spread")
    degraded = healthy.with_failed_nic(int(sim.gpu_ids(preq)[1][0]), 0.5)  # half of one member's NIC lost
    first = sim.estimate_one(0, 1 << 30, preq)
    hits = sim.cache_hits
    assert sim.estimate_one(0, 1 << 30, preq) == first and sim.cache_hits == hits + 1
    views.append(LiveView(1, degraded))
    after = sim.estimate_one(0, 1 << 30, preq)
    fresh = FabricSimulator(topo, lambda: LiveView(0, degraded), JobRegistry(topo.n_gpus))
    expected = fresh.estimate_one(0, 1 << 30, preq)
    assert after.time_s > first.time_s  # the slow NIC slows the 256-rank spread all-reduce
    assert after._replace(state_version=0) == expected and after.state_version == 1
    assert sim.cache_hits == hits + 1
