"""One EstimateCollective answer (the per-RPC fast path: scalar size check, the collective handed to the
core as an int, the response built from Python scalars) equals the batch path's entry for the same
(collective, size, placement), field by field, including single-rank/zero-traffic answers ("none"), and
rejects the same sizes with the same field-named errors."""

from __future__ import annotations

import numpy as np
import pytest

from twin.fabric.adapters import codec
from twin.fabric.domain import COLLECTIVES, LinkState, preset
from twin.fabric.simulation import MAX_SIZE_BYTES, FabricSimulator, InvalidArgument, JobRegistry, LiveView
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
            c, s, p = codec.estimate_collective_request(req)
            one = sim.estimate(c, sim.check_sizes(s, "size_bytes"), p)
            assert one.collective.shape == one.size_bytes.shape == (1,)
            resp = codec.estimate_collective_response(one)
            assert resp.estimate == expected.estimates[i], (enum, size)
            assert (resp.n_ranks, resp.n_nodes) == (table.n_ranks, table.n_nodes)
            i += 1
    if n_ranks == 1:
        assert {e.algorithm for e in expected.estimates} == {"none"}
    else:
        assert "none" not in {e.algorithm for e in expected.estimates}


@pytest.mark.parametrize("size,message", [(0, "size_bytes: must be > 0"),
                                          (MAX_SIZE_BYTES + 1, f"size_bytes: {MAX_SIZE_BYTES + 1} exceeds")])
def test_single_size_rejected_like_a_batch_entry(size, message):
    with pytest.raises(InvalidArgument) as one:
        FabricSimulator.check_sizes(np.array([size], dtype=np.uint64), "size_bytes")
    assert str(one.value).startswith(message)
    with pytest.raises(InvalidArgument) as many:
        FabricSimulator.check_sizes(np.array([5, size], dtype=np.uint64), "size_bytes")
    assert str(many.value).startswith(message.replace("size_bytes:", "size_bytes[1]:"))
