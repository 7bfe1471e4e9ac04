"""assumed_links over real gRPC on loopback, with the live link state fed from a real broker and PostgreSQL: an
uplink assumed DOWN for one request answers exactly what the fabric twin answers once that uplink really goes down
(LinkEvent on fabric.events.v1), for EstimatePlacements, EstimateBatch and EstimateMoe; the assumption leaves the
live state untouched; with the uplink really down, assuming it UP gives back the healthy answers; bad entries answer
INVALID_ARGUMENT naming assumed_links[i].link_id / .capacity_fraction.

Facility: the DGX H100 SU preset re-cabled into 4 leaf groups of 8 nodes, 4 spines at 8:1 (as
test_fabric_placements_grpc.py), so rail-0 groups crossing leaf groups 0 and 1 cross leaf-r0-g0's uplinks.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from pathlib import Path

import grpc
import pytest
from service_harness import Running, live_fabric_config, small_leaf_facility

from twin.core.kafka import EventProducer
from twin.fabric.app import FabricApp
from twin.fabric.v1 import fabric_pb2 as pb
from twin.fabric.v1 import fabric_pb2_grpc as pb_grpc

pytestmark = pytest.mark.timeout(180)

UPLINK = "leaf-r0-g0/spine1"
DOWN = pb.LinkHealth(link_id=UPLINK, capacity_fraction=0.0)
SPREAD_64 = pb.Placement(ranks=pb.RankCount(n_ranks=64, policy=pb.PACKING_POLICY_SPREAD))


@pytest.fixture
def facility_file(tmp_path: Path) -> Path:
    return small_leaf_facility(tmp_path, "it-fabric-assumed")


def _placements(*assumed: pb.LinkHealth) -> pb.EstimatePlacementsRequest:
    """Rail-0 groups across leaf groups 0 and 1 (they cross leaf-r0-g0's uplinks), across groups 2 and 3 and inside
    one node (they do not), and a spread 64-rank placement."""
    req = pb.EstimatePlacementsRequest(nccl_version="2.27.3", assumed_links=assumed)
    for ids in ([0, 8, 64, 72], [128, 136, 192, 200], list(range(8))):
        req.entries.add(placement=pb.Placement(gpus=pb.GpuList(gpu_ids=ids)),
                        collectives=[pb.COLLECTIVE_ALL_REDUCE, pb.COLLECTIVE_ALL_GATHER],
                        size_bytes=[1 << 28, 123_457_891])
    req.entries.add(placement=SPREAD_64, collectives=[pb.COLLECTIVE_ALL_REDUCE], size_bytes=[1 << 30])
    return req


def _batch(*assumed: pb.LinkHealth) -> pb.EstimateBatchRequest:
    return pb.EstimateBatchRequest(collectives=[pb.COLLECTIVE_ALL_REDUCE, pb.COLLECTIVE_REDUCE_SCATTER],
                                   size_bytes=[1 << 30, 1 << 26], placement=SPREAD_64, assumed_links=assumed)


def _moe(*assumed: pb.LinkHealth) -> pb.EstimateMoeRequest:
    return pb.EstimateMoeRequest(cases=[pb.MoeCase(
        kernel=pb.MOE_KERNEL_DEEPEP_NORMAL, tokens_per_rank=4096, hidden_size=7168, top_k=8, num_experts=256,
        dispatch_precision=pb.MOE_PRECISION_FP8, combine_precision=pb.MOE_PRECISION_BF16, max_nodes_per_token=4)],
        placement=SPREAD_64, assumed_links=assumed)


async def _answers(stub, *assumed: pb.LinkHealth) -> tuple:
    return (await stub.EstimatePlacements(_placements(*assumed), timeout=10),
            await stub.EstimateBatch(_batch(*assumed), timeout=10),
            await stub.EstimateMoe(_moe(*assumed), timeout=10))


def _strip(answers: tuple) -> tuple:
    """The answers without assumed_links_applied (the only field an assumed answer has beyond the live one)."""
    out = []
    for a in answers:
        b = type(a)()
        b.CopyFrom(a)
        b.assumed_links_applied = 0
        out.append(b)
    return tuple(out)


async def test_an_assumed_down_uplink_answers_as_the_uplink_really_down(kafka_bootstrap, fresh_database,
                                                                         facility_file, unique_topic):
    cfg = await live_fabric_config(kafka_bootstrap, fresh_database, facility_file, unique_topic,
                                   f"fabric-assumed-{uuid.uuid4().hex[:8]}")
    async with Running(FabricApp(cfg)) as app, EventProducer(kafka_bootstrap, source="test") as producer, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.FabricSimulationServiceStub(channel)
        healthy = await _answers(stub)
        assert all(a.assumed_links_applied == 0 for a in healthy)

        assumed = await _answers(stub, DOWN)
        assert all(a.assumed_links_applied == 1 for a in assumed)
        places = assumed[0]
        # the rail-0 group crossing leaf groups 0 and 1 is slower; the others are not
        assert places.entries[0].estimates[0].time_s > healthy[0].entries[0].estimates[0].time_s
        assert list(places.entries[1].estimates) == list(healthy[0].entries[1].estimates)
        assert list(places.entries[2].estimates) == list(healthy[0].entries[2].estimates)
        assert assumed[1].estimates[0].time_s > healthy[1].estimates[0].time_s
        assert assumed[2].estimates[0].dispatch_time_s > healthy[2].estimates[0].dispatch_time_s

        # the live state is untouched: nothing down, and the live answers are the healthy ones
        state = (await stub.GetFabricState(pb.GetFabricStateRequest(), timeout=10)).state
        assert state.links_down == 0 and list(state.links) == []
        assert await _answers(stub) == healthy

        # the uplink really goes down: the live answers become exactly the assumed ones
        msg = pb.LinkEvent(link_id=UPLINK, kind=pb.LINK_EVENT_KIND_DOWN, reason="integration test")
        msg.event_time.FromNanoseconds(time.time_ns())
        await producer.send(cfg.events_topic, UPLINK, msg)
        deadline = time.monotonic() + 30
        real = await _answers(stub)
        while any(r == h for r, h in zip(real, healthy, strict=True)) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # (the event may land between the three RPCs: ask until all three moved)
            real = await _answers(stub)
        assert all(r != h for r, h in zip(real, healthy, strict=True)), "the DOWN event never reached the answers"
        assert real == _strip(assumed)
        # assuming the down uplink (and its leaf's others, by the leaf id) healthy gives back the healthy answers
        up = pb.LinkHealth(link_id="leaf-r0-g0", capacity_fraction=1.0)
        assert _strip(await _answers(stub, up)) == healthy
        state = (await stub.GetFabricState(pb.GetFabricStateRequest(), timeout=10)).state
        assert state.links_down == 1

        # bad entries name the field
        for links, field in (([DOWN, pb.LinkHealth(link_id="leaf-r0-g9/spine1")], "assumed_links[1].link_id"),
                             ([pb.LinkHealth(link_id="")], "assumed_links[0].link_id"),
                             ([pb.LinkHealth(link_id=UPLINK, capacity_fraction=1.5)],
                              "assumed_links[0].capacity_fraction"),
                             ([pb.LinkHealth(link_id=UPLINK, capacity_fraction=math.nan)],
                              "assumed_links[0].capacity_fraction")):
            for call, req in ((stub.EstimatePlacements, _placements(*links)), (stub.EstimateBatch, _batch(*links)),
                              (stub.EstimateMoe, _moe(*links))):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call(req, timeout=10)
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert field in err.value.details(), err.value.details()
