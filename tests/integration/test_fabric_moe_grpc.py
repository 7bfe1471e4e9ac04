"""EstimateMoe over real gRPC on loopback, fed by the live link state from a real broker and PostgreSQL.

Facility: the DGX H100 SU preset (32 nodes x 8 GPUs, one 400G NIC per GPU). A 64-rank EP group (8 nodes) runs
DeepEP's normal kernels: a NIC DOWN event on fabric.events.v1 for one of the group's GPUs must slow its
network-bound dispatch, and an UP must give back the healthy answer exactly.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest
from service_harness import Running, live_fabric_config

from twin.core.kafka import EventProducer
from twin.fabric.app import FabricApp, FabricConfig
from twin.fabric.v1 import fabric_pb2 as pb
from twin.fabric.v1 import fabric_pb2_grpc as pb_grpc

pytestmark = pytest.mark.timeout(180)

NIC = "su1-0000-n00/nic0"  # GPU 0's NIC: rank 0 of the EP group
REQUEST = pb.EstimateMoeRequest(
    cases=[pb.MoeCase(kernel=k, tokens_per_rank=4096, hidden_size=7168, top_k=8, num_experts=256,
                      dispatch_precision=pb.MOE_PRECISION_FP8, combine_precision=pb.MOE_PRECISION_BF16,
                      max_nodes_per_token=4)
           for k in (pb.MOE_KERNEL_DEEPEP_NORMAL, pb.MOE_KERNEL_DEEPEP_LOW_LATENCY, pb.MOE_KERNEL_NCCL_ALLTOALL)],
    placement=pb.Placement(ranks=pb.RankCount(n_ranks=64)))


def _event(kind: int) -> pb.LinkEvent:
    msg = pb.LinkEvent(link_id=NIC, kind=kind, reason="integration test")
    msg.event_time.FromNanoseconds(time.time_ns())
    return msg


async def _until(fn, ok, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    got = await fn()
    while not ok(got) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        got = await fn()
    assert ok(got), f"condition not met within {timeout_s}s: {got}"
    return got


async def test_moe_follows_the_live_nic_state(kafka_bootstrap, fresh_database, unique_topic):
    cfg = await live_fabric_config(kafka_bootstrap, fresh_database, "dgx-h100-su", unique_topic,
                                   f"fabric-moe-{uuid.uuid4().hex[:8]}")
    async with Running(FabricApp(cfg)) as app, EventProducer(kafka_bootstrap, source="test") as producer, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.FabricSimulationServiceStub(channel)

        async def ask():
            return await stub.EstimateMoe(REQUEST)

        healthy = await ask()
        assert (healthy.ep_ranks, healthy.n_nodes) == (64, 8)
        assert all(0 < e.dispatch_time_s < e.combine_time_s for e in healthy.estimates)

        await producer.send(cfg.events_topic, NIC, _event(pb.LINK_EVENT_KIND_DOWN))
        down = await _until(ask, lambda r: r.estimates[0].dispatch_time_s > healthy.estimates[0].dispatch_time_s)
        # node 0 keeps 7 of its 8 NICs: every kernel that crosses nodes is slower (the worst node sets the pace)
        for h, d in zip(healthy.estimates, down.estimates, strict=True):
            assert d.dispatch_time_s > h.dispatch_time_s and d.combine_time_s > h.combine_time_s
            assert d.dispatch_network_bytes == h.dispatch_network_bytes  # the traffic is the same, the path slower

        await producer.send(cfg.events_topic, NIC, _event(pb.LINK_EVENT_KIND_UP))
        restored = await _until(ask, lambda r: r.estimates[0].dispatch_time_s == healthy.estimates[0].dispatch_time_s)
        assert restored == healthy


async def test_twinctl_fabric_moe_table_and_json(capsys):
    import json

    from twinctl.__main__ import main as twinctl_main

    cfg = FabricConfig(kafka_bootstrap="unused:1", database_url="unused", facility="dgx-h100-su",
                       grpc_host="127.0.0.1", grpc_port=0, consume=False)
    app = FabricApp(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        await asyncio.wait_for(app.ready.wait(), 30)
        base = ["fabric", "--target", f"127.0.0.1:{app.port}"]
        args = ["moe", "--tokens", "4096", "--hidden", "7168", "--top-k", "8", "--experts", "256", "--ranks", "64",
                "--max-nodes", "4"]
        capsys.readouterr()
        assert await asyncio.to_thread(twinctl_main, [*base, *args]) == 0
        table = capsys.readouterr().out
        assert "EP group of 64 ranks on 8 nodes" in table
        assert [ln.split()[0] for ln in table.splitlines()[2:]] == ["nccl", "deepep-normal", "deepep-ll"], table
        assert await asyncio.to_thread(twinctl_main, [*base, "--json", *args, "--kernel", "deepep-normal"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert len(doc["estimates"]) == 1 and doc["epRanks"] == 64
        # invalid input: the server's INVALID_ARGUMENT, a non-zero exit
        assert await asyncio.to_thread(twinctl_main, [*base, "moe", "--tokens", "8", "--hidden", "8", "--top-k", "8",
                                                      "--experts", "100", "--ranks", "64"]) != 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
