"""EstimatePlacements over real gRPC on loopback, fed by the live link state from a real broker and PostgreSQL:
each entry's answer equals EstimateBatch's for that placement, field by field, before and after a leaf uplink is
degraded on fabric.events.v1 (so entries crossing that leaf change and the others do not); bad entries answer
INVALID_ARGUMENT naming the entry's field.

Facility: the DGX H100 SU preset re-cabled into 4 leaf groups of 8 nodes (as test_jobs_whatif_fabric.py), so
placements can cross leaf groups and the degraded uplink of leaf-r0-g0 enters some of them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import grpc
import numpy as np
import pytest
from service_harness import Running, live_fabric_config, small_leaf_facility

from twin.core.kafka import EventProducer
from twin.fabric.app import FabricApp
from twin.fabric.v1 import fabric_pb2 as pb
from twin.fabric.v1 import fabric_pb2_grpc as pb_grpc

pytestmark = pytest.mark.timeout(180)

UPLINK = "leaf-r0-g0/spine1"
COLLS = [pb.COLLECTIVE_ALL_REDUCE, pb.COLLECTIVE_ALL_GATHER, pb.COLLECTIVE_REDUCE_SCATTER, pb.COLLECTIVE_ALLTOALL,
         pb.COLLECTIVE_SEND_RECV, pb.COLLECTIVE_BROADCAST]


@pytest.fixture
def facility_file(tmp_path: Path) -> Path:
    return small_leaf_facility(tmp_path, "it-fabric-placements")


def _request() -> pb.EstimatePlacementsRequest:
    """Rail-0 DP-like groups (one GPU per node, 8 GPUs per node) inside and across leaf groups, TP-like groups
    inside a node, a packed rank count, in mixed order and with different (collective, size) lists."""
    rng = np.random.default_rng(11)
    req = pb.EstimatePlacementsRequest(nccl_version="2.27.3")
    groups = [[8 * n for n in nodes] for nodes in ([0, 1, 8, 9], [16, 17, 24, 25], [0, 8, 16, 24], [2, 3, 4, 5],
                                                   [10, 11, 12, 13], [0, 1, 2, 3, 4, 5, 6, 7])]
    groups += [list(range(8 * n, 8 * n + 8)) for n in (0, 9)]
    groups.append([8 * n + 5 for n in range(32)])
    for k, ids in enumerate(groups):
        m = 1 + k % 4
        req.entries.add(placement=pb.Placement(gpus=pb.GpuList(gpu_ids=ids)),
                        collectives=rng.choice(COLLS, size=m).tolist(),
                        size_bytes=rng.choice([4096, 1 << 20, 123_457_891, 1 << 31], size=m).tolist())
    req.entries.add(placement=pb.Placement(ranks=pb.RankCount(n_ranks=64, policy=pb.PACKING_POLICY_SPREAD)),
                    collectives=[pb.COLLECTIVE_ALL_REDUCE], size_bytes=[1 << 28])
    return req


async def _batch_answers(stub, req: pb.EstimatePlacementsRequest) -> list[pb.EstimateBatchResponse]:
    return [await stub.EstimateBatch(pb.EstimateBatchRequest(collectives=e.collectives, size_bytes=e.size_bytes,
                                                             placement=e.placement, nccl_version=req.nccl_version),
                                     timeout=10) for e in req.entries]


def _same(many: pb.EstimatePlacementsResponse, batches: list[pb.EstimateBatchResponse]) -> None:
    assert len(many.entries) == len(batches)
    for i, (got, want) in enumerate(zip(many.entries, batches, strict=True)):
        assert (got.n_ranks, got.n_nodes) == (want.n_ranks, want.n_nodes), i
        assert list(got.estimates) == list(want.estimates), i


async def test_each_entry_equals_estimate_batch_under_the_live_state(kafka_bootstrap, fresh_database, facility_file,
                                                                      unique_topic):
    cfg = await live_fabric_config(kafka_bootstrap, fresh_database, facility_file, unique_topic,
                                   f"fabric-placements-{uuid.uuid4().hex[:8]}")
    async with Running(FabricApp(cfg)) as app, EventProducer(kafka_bootstrap, source="test") as producer, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.FabricSimulationServiceStub(channel)
        req = _request()
        healthy = await stub.EstimatePlacements(req, timeout=10)
        _same(healthy, await _batch_answers(stub, req))

        msg = pb.LinkEvent(link_id=UPLINK, kind=pb.LINK_EVENT_KIND_DEGRADED, capacity_fraction=0.25,
                           reason="integration test")
        msg.event_time.FromNanoseconds(time.time_ns())
        await producer.send(cfg.events_topic, UPLINK, msg)
        deadline = time.monotonic() + 30
        degraded = await stub.EstimatePlacements(req, timeout=10)
        while degraded == healthy and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            degraded = await stub.EstimatePlacements(req, timeout=10)
        assert degraded != healthy, "the degraded uplink never reached the answers"
        _same(degraded, await _batch_answers(stub, req))
        # the entry crossing leaf group 0 and 1 on rail 0 is slower; the one inside leaf group 1 is not
        assert degraded.entries[0].estimates[0].time_s > healthy.entries[0].estimates[0].time_s
        assert degraded.entries[4].estimates == healthy.entries[4].estimates

        bad = pb.EstimatePlacementsRequest()
        bad.CopyFrom(req)
        ids = bad.entries[3].placement.gpus.gpu_ids
        ids.append(ids[0])  # a duplicate id
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.EstimatePlacements(bad, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "entries[3].placement.gpus.gpu_ids" in err.value.details()
