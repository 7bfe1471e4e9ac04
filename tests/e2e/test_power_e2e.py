"""The power twin as processes (`python -m twin.power`): two processes in one consumer group give the same
site total as one process.

Telemetry is produced by the test (one full-load tick for the 8 racks of the DGX H100 SU preset:
DCGM power on some GPUs, PDU readings on some racks), so the expected site total is known from the
domain (site_tick) and every wait has a concrete target. Phase 1: one process computes the site total
of tick 1. Phase 2: two processes in another group, each owning half of telemetry.samples.v1's
partitions (checked in their logs), compute the total of tick 2 (same values, later time); it must
equal phase 1's, and both processes must have modelled racks.
"""

from __future__ import annotations

import asyncio
import re
import time

import numpy as np
import pytest
from e2e_support import Procs, rows, scalar, topic_records, wait_until

from twin.core import topics
from twin.core.embedded.kafka import free_port
from twin.core.facility import load_facility_spec
from twin.core.kafka import EventProducer
from twin.power.domain import site_tick
from twin.power.site import build_site_model
from twin.power.v1 import power_pb2 as pb
from twin.telemetry.v1 import telemetry_pb2 as tpb

pytestmark = pytest.mark.timeout(240)

FACILITY = "dgx-h100-su"


def tick(t: float) -> tuple[list[tuple[str, tpb.TelemetrySamples]], float]:
    """(batches keyed by rack, expected site import W) for one deterministic full-load tick at time t."""
    m = build_site_model(load_facility_spec(FACILITY))
    inv = m.inventory
    rng = np.random.default_rng(11)
    tensor = rng.uniform(0.5, 1.0, inv.n_gpus)
    sm = np.minimum(tensor + 0.1, 1.0)
    dram = rng.uniform(0.1, 0.6, inv.n_gpus)
    gpu_rack = inv.node_rack[inv.gpu_node]
    measured = np.where(gpu_rack % 3 == 0, 640.0, np.nan)
    base = site_tick(m.gpu, m.layout, m.network, tensor_active=tensor, sm_active=sm, dram_active=dram,
                     measured_gpu_w=measured)
    pdu = np.where(np.arange(len(inv.racks)) % 2 == 0, base.racks.rack_input_w * 1.03, np.nan)
    expected = site_tick(m.gpu, m.layout, m.network, tensor_active=tensor, sm_active=sm, dram_active=dram,
                         measured_gpu_w=measured, measured_rack_w=pdu).chain.site_w
    out = []
    for r, rack in enumerate(inv.racks):
        b = tpb.RackTelemetryBatch(site_id=m.network.site_id, rack_id=rack.rack_id, sequence=int(t), source="e2e")
        b.sample_time.FromNanoseconds(int(t * 1e9))
        for j, node_id in enumerate(inv.node_ids(rack)):
            node = rack.first_node + j
            g = np.arange(inv.node_first_gpu[node], inv.node_first_gpu[node] + inv.node_gpus[node])
            gs = b.nodes.add(node_id=node_id).gpus
            gs.gpu_index.extend(range(len(g)))
            gs.power_w.extend(measured[g].tolist())
            gs.tensor_active.extend(tensor[g].tolist())
            gs.sm_active.extend(sm[g].tolist())
            gs.dram_active.extend(dram[g].tolist())
        if not np.isnan(pdu[r]):
            b.rack.pdu_input_power_w.append(float(pdu[r]))
        out.append((rack.rack_id, tpb.TelemetrySamples(batch=b)))
    return out, expected


def produce(bootstrap: str, batches) -> None:
    async def run():
        async with EventProducer(bootstrap, source="e2e") as producer:
            for key, msg in batches:
                await producer.send(topics.TELEMETRY_SAMPLES, key, msg)

    asyncio.run(run())


def site_totals(bootstrap: str, at_s: float) -> list[float]:
    """Input power of every site PowerState on power.state.v1 with state time `at_s`."""
    out = []
    for r in topic_records(bootstrap, topics.POWER_STATE.name, topics.POWER_STATE.partitions):
        s = pb.PowerState.FromString(r.value)
        if s.scope == pb.POWER_SCOPE_SITE and abs(s.state_time.ToNanoseconds() / 1e9 - at_s) < 1e-6:
            out.append(s.input_power_w)
    return out


def assigned_telemetry_partitions(log: str) -> set[int] | None:
    """The partitions of telemetry.samples.v1 in the process's latest assignment (None: none yet)."""
    lines = [ln for ln in log.splitlines() if "newly assigned partitions" in ln and "telemetry.samples.v1" in ln]
    if not lines:
        return None
    return {int(p) for p in re.findall(r"topic='telemetry\.samples\.v1', partition=(\d+)", lines[-1])}


def racks_modelled(log: str) -> int:
    found = re.findall(r"racks=(\d+)", log)
    return int(found[-1]) if found else 0


def start_power(procs: Procs, name: str, group: str):
    return procs.start(name, "twin.power", env={
        "TWIN_FACILITY": FACILITY, "POWER_GROUP_ID": group, "POWER_GRPC_PORT": str(free_port()),
        "POWER_HTTP_PORT": "0", "POWER_STATUS_INTERVAL_S": "1", "POWER_SESSION_TIMEOUT_MS": "3000"})


def test_two_processes_in_one_group_give_the_same_site_total_as_one(kafka, fresh_database, procs):
    t1 = float(int(time.time()))
    batches, expected = tick(t1)

    # phase 1: one process
    solo = start_power(procs, "power-solo", "power-solo")
    wait_until(lambda: assigned_telemetry_partitions(solo.log()) == set(range(12)), 60, "solo assignment", procs)
    produce(kafka, batches)
    wait_until(lambda: any(w == pytest.approx(expected, rel=1e-9) for w in site_totals(kafka, t1)), 60,
               "the solo site total", procs)
    one = [w for w in site_totals(kafka, t1) if w == pytest.approx(expected, rel=1e-9)][-1]
    assert solo.stop() == 0

    # phase 2: two processes share the racks (another group: they start from the topic's beginning)
    a = start_power(procs, "power-a", "power-pair")
    b = start_power(procs, "power-b", "power-pair")

    def split() -> bool:
        pa, pb_ = assigned_telemetry_partitions(a.log()), assigned_telemetry_partitions(b.log())
        return bool(pa and pb_ and not pa & pb_ and pa | pb_ == set(range(12)))

    wait_until(split, 90, "the pair to split telemetry.samples.v1", procs)
    t2 = t1 + 10.0
    batches2, expected2 = tick(t2)
    assert expected2 == expected
    produce(kafka, batches2)
    wait_until(lambda: any(w == pytest.approx(one, rel=1e-9) for w in site_totals(kafka, t2)), 60,
               "the pair's site total", procs)
    wait_until(lambda: racks_modelled(a.log()) > 0 and racks_modelled(b.log()) > 0, 30,
               "both processes modelling racks", procs)
    assert a.alive() and b.alive()
    assert a.stop() == 0 and b.stop() == 0


def test_simulator_to_ingest_to_power_to_database_to_grpc(kafka, fresh_database, procs):
    """facility-sim → ingest → telemetry.samples.v1 → power → power_state → gRPC GetSiteState, as processes."""
    import grpc

    from twin.power.v1 import power_pb2_grpc as pb_grpc

    port = free_port()
    procs.start("ingest", "twin.ingest")
    power = procs.start("power", "twin.power", env={
        "TWIN_FACILITY": FACILITY, "POWER_GRPC_PORT": str(port), "POWER_HTTP_PORT": "0",
        "POWER_STATUS_INTERVAL_S": "1", "POWER_SESSION_TIMEOUT_MS": "3000"})
    sim = procs.start("facility-sim", "twin.facility_sim", "--rate-hz", "2", "--duration", "8", "--racks", "4",
                      "--metrics-port", "-1", "--seed", "5")
    assert sim.wait(90) == 0
    racks = [f"su1-{i:04d}" for i in range(4)]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = pb_grpc.PowerServiceStub(channel)

        def settled():
            # every simulated rack stored, and the site state as new as the newest rack state
            latest = rows(fresh_database, "SELECT entity_id, time FROM power_state_latest WHERE scope = %s",
                          (pb.POWER_SCOPE_RACK,)) if scalar(fresh_database, "SELECT count(*) FROM power_state_latest",
                                                            0) > 0 else []
            if sorted(e for e, _ in latest) != racks:
                return None
            site = stub.GetSiteState(pb.GetSiteStateRequest(include_components=True), timeout=10)
            newest = max(t for _, t in latest).timestamp()
            return site if abs(site.site.state_time.ToNanoseconds() / 1e9 - newest) < 1e-6 else None

        site = wait_until(settled, 60, "power states of the simulated racks", procs)
        rack_states = [stub.GetRackState(pb.GetRackStateRequest(rack_id=r), timeout=10).state for r in racks]
    # the site's IT power is what its racks draw: the four simulated racks as stored, the four silent ones idle
    measured_it = sum(s.input_power_w for s in rack_states)
    assert site.site.output_power_w > measured_it > 0
    assert site.site.input_power_w > site.site.output_power_w            # chain losses
    assert site.site.source == pb.VALUE_SOURCE_MIXED or site.site.source == pb.VALUE_SOURCE_MODELLED
    assert {c.entity_id for c in site.components} >= {"pdu-1", "ups-bus", "tx-1", "feed-a"}
    assert all(s.source != pb.VALUE_SOURCE_UNSPECIFIED for s in rack_states)
    assert power.alive(), power.log()[-3000:]
    assert power.stop() == 0
