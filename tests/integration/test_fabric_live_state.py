"""The fabric twin end to end against a real broker (Tansu or TWIN_KAFKA_BOOTSTRAP) and real PostgreSQL.

Facility: the DGX H100 SU preset re-cabled into 4 leaf groups of 8 nodes with 4 spines and 8:1
oversubscription, so a spread 64-GPU job (2 nodes per leaf group) crosses the spine and each rail
leaf's uplinks carry exactly one NIC's worth of bandwidth: losing one of a leaf's 4 uplinks slows
the job's collectives; restoring it gives back the healthy answer exactly.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import grpc
import psycopg
import pytest
from service_harness import Running, live_fabric_config, poll, read_until, small_leaf_facility

from twin.core.envelope import header
from twin.core.kafka import EventProducer
from twin.fabric.app import FabricApp, FabricConfig
from twin.fabric.v1 import fabric_pb2 as pb
from twin.fabric.v1 import fabric_pb2_grpc as pb_grpc
from twin.telemetry.v1 import telemetry_pb2 as tpb

pytestmark = pytest.mark.timeout(180)

UPLINK = "leaf-r0-g0/spine1"  # rail-0 leaf of leaf group 0: the spread job's nodes 0 and 1 sit under it
SPREAD_64 = pb.Placement(ranks=pb.RankCount(n_ranks=64, policy=pb.PACKING_POLICY_SPREAD))
REQUEST = pb.EstimateCollectiveRequest(collective=pb.COLLECTIVE_ALL_REDUCE, size_bytes=1 << 30, placement=SPREAD_64)


@pytest.fixture
def facility_file(tmp_path: Path) -> Path:
    return small_leaf_facility(tmp_path, "it-fabric")


def event(link_id: str, kind: int, capacity: float = 0.0, t: float | None = None) -> pb.LinkEvent:
    msg = pb.LinkEvent(link_id=link_id, kind=kind, capacity_fraction=capacity, reason="integration test")
    msg.event_time.FromNanoseconds(int((t if t is not None else time.time()) * 1e9))
    return msg


async def test_uplink_down_slows_the_job_and_up_restores_it(kafka_bootstrap, fresh_database, facility_file,
                                                             unique_topic):
    cfg = await live_fabric_config(kafka_bootstrap, fresh_database, facility_file, unique_topic,
                                   f"fabric-it-{uuid.uuid4().hex[:8]}")
    async with Running(FabricApp(cfg)) as app, EventProducer(kafka_bootstrap, source="test") as producer, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.FabricSimulationServiceStub(channel)
        healthy = await stub.EstimateCollective(REQUEST)
        assert healthy.n_nodes == 8

        async def estimate():
            return await stub.EstimateCollective(REQUEST)

        t0 = time.time()
        await producer.send(cfg.events_topic, UPLINK, event(UPLINK, pb.LINK_EVENT_KIND_DOWN, t=t0))
        degraded = await poll(estimate, lambda r: r.estimate.time_s > healthy.estimate.time_s)
        assert degraded.estimate.busbw_gbps < healthy.estimate.busbw_gbps
        assert degraded.estimate.bandwidth_s > healthy.estimate.bandwidth_s

        # the state the estimates use, through the API and on fabric.state.v1
        state = (await stub.GetFabricState(pb.GetFabricStateRequest())).state
        assert state.links_down == 1 and [link.link_id for link in state.links] == [UPLINK]
        published = await read_until(kafka_bootstrap, cfg.state_topic,
                                   lambda recs: any(pb.FabricState.FromString(r.value).links_down == 1 for r in recs))
        assert all(r.key == b"it-fabric" for r in published)

        # a job that stays inside one leaf group never crosses the spine: unaffected
        packed = pb.EstimateCollectiveRequest(collective=pb.COLLECTIVE_ALL_REDUCE, size_bytes=1 << 30,
                                              placement=pb.Placement(ranks=pb.RankCount(n_ranks=64)))
        assert (await stub.EstimateCollective(packed)).estimate.time_s < degraded.estimate.time_s

        await producer.send(cfg.events_topic, UPLINK, event(UPLINK, pb.LINK_EVENT_KIND_UP, t=t0 + 1))
        restored = await poll(estimate, lambda r: r.estimate.time_s != degraded.estimate.time_s)
        assert restored == healthy  # exactly the healthy answer, every field

        # invalid events go to the DLQ with a reason; the partition keeps flowing
        await producer.send(cfg.events_topic, "leaf-r0-g9/spine0", event("leaf-r0-g9/spine0", pb.LINK_EVENT_KIND_DOWN))
        await producer.send(cfg.events_topic, UPLINK, event(UPLINK, pb.LINK_EVENT_KIND_DEGRADED, capacity=1.5))
        dlq = await read_until(kafka_bootstrap, cfg.events_topic, lambda recs: len(recs) >= 2, dlq=True)
        reasons = sorted(header(list(r.headers), "dlq_reason").decode() for r in dlq)
        assert any("link_id" in r and "leaf-r0-g9/spine0" in r for r in reasons), reasons
        assert any("capacity_fraction" in r and "1.5" in r for r in reasons), reasons
        assert all(header(list(r.headers), "dlq_source_topic").decode() == cfg.events_topic.name for r in dlq)
        # the rejected DEGRADED did not touch the live state
        assert (await stub.EstimateCollective(REQUEST)) == healthy

        # link counters from telemetry: NIC port counters set NIC utilization (not the uplinks': that traffic is the
        # jobs' own, which the collective model already routes over the uplinks)
        def samples(t: float, tx: int) -> tpb.TelemetrySamples:
            msg = tpb.TelemetrySamples()
            b = msg.batch
            b.site_id, b.rack_id = "it-fabric", "su1-0000"
            b.sample_time.FromNanoseconds(int(t * 1e9))
            ports = [f"su1-0000-n00/nic{k}" for k in range(8)]
            b.links.port_id.extend(ports + ["some-switch/port7"])  # the unknown port is skipped
            b.links.tx_bytes.extend([tx] * 9)
            b.links.rx_bytes.extend([tx // 2] * 9)
            return msg

        await producer.send(cfg.samples_topic, "su1-0000", samples(t0, 0))
        await producer.send(cfg.samples_topic, "su1-0000", samples(t0 + 10, 250_000_000_000))  # 25 GB/s = 50 %
        state = await poll(lambda: stub.GetFabricState(pb.GetFabricStateRequest()),
                           lambda r: any(link.link_id == "su1-0000-n00/nic0" for link in r.state.links))
        util = {link.link_id: link.utilization for link in state.state.links}
        assert util["su1-0000-n00/nic0"] == pytest.approx(0.5)
        assert "leaf-r0-g0/spine0" not in util  # the uplinks stay as they were (healthy, idle)
        assert (await stub.EstimateCollective(REQUEST)) == healthy  # a job's own traffic does not slow it
        assert app.live.stats.unknown_ports == 2  # once per batch

    # fabric_state rows: the DOWN and the UP of the uplink, and the counter-derived utilization
    with psycopg.connect(fresh_database) as conn:
        rows = conn.execute("SELECT capacity_fraction, utilization > 0, flapping, site_id FROM fabric_state"
                            " WHERE link_id = %s ORDER BY time", (UPLINK,)).fetchall()
        # DOWN, UP (NIC counters put nothing on the leaf's uplinks)
        assert [(r[0], r[1], r[2]) for r in rows] == [(0.0, False, False), (1.0, False, False)]
        assert {r[3] for r in rows} == {"it-fabric"}
        nic = conn.execute("SELECT utilization FROM fabric_state WHERE link_id = 'su1-0000-n00/nic0'").fetchall()
        assert [round(r[0], 6) for r in nic] == [0.5]


async def test_state_survives_a_restart_and_redelivery_is_idempotent(kafka_bootstrap, fresh_database, facility_file,
                                                                     unique_topic):
    cfg = await live_fabric_config(kafka_bootstrap, fresh_database, facility_file, unique_topic,
                                   f"fabric-it-{uuid.uuid4().hex[:8]}")
    down = event(UPLINK, pb.LINK_EVENT_KIND_DOWN, t=time.time())
    async with Running(FabricApp(cfg)) as app, EventProducer(kafka_bootstrap, source="test") as producer:
        await producer.send(cfg.events_topic, UPLINK, down)
        await poll(lambda: _version(app), lambda v: v >= 1)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            before = await pb_grpc.FabricSimulationServiceStub(channel).EstimateCollective(REQUEST)

    # a new process with a new consumer group re-reads the same event (redelivery) after restoring
    # the stored state: same answer, no duplicate row
    cfg2 = FabricConfig(**{**cfg.__dict__, "group_id": cfg.group_id + "-2"})
    async with Running(FabricApp(cfg2)) as app2:
        assert app2.live.snapshot().health.capacity_fraction[app2.live.index.slots(UPLINK)[0]] == 0.0
        await poll(lambda: _consumed(app2), lambda n: n >= 1)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app2.port}") as channel:
            after = await pb_grpc.FabricSimulationServiceStub(channel).EstimateCollective(REQUEST)
        assert after == before
    with psycopg.connect(fresh_database) as conn:
        (count,) = conn.execute("SELECT count(*) FROM fabric_state WHERE link_id = %s", (UPLINK,)).fetchone()
        assert count == 1


async def _version(app: FabricApp) -> int:
    return app.live.version


async def _consumed(app: FabricApp) -> int:
    return app.events_stats.consumed
