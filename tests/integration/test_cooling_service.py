"""The cooling twin as a service against the real broker (Tansu or TWIN_KAFKA_BOOTSTRAP) and real PostgreSQL,
with real gRPC over loopback; and coupled with the power twin (both apps in this process, events only).

Facility: the GB200 NVL72 hall preset (16 liquid racks of 72 GPUs; rows a and b, each on its own N+1
loop of two 1.4 MW CDUs: loop-a = cdu-a-1 + cdu-a-2 serves racks a-0000..a-0007). Losing one CDU of a
loop leaves the partner carrying it; losing both stops the loop's flow, so exactly that row throttles.
Expected numbers come from the domain functions directly (evaluate, coolant.heat_w), not from the service.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import numpy as np
import psycopg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from service_harness import WAIT_S, Running, read_to_end, read_until

from twin.cooling.adapters.codec import setpoint_request
from twin.cooling.app import CoolingApp, CoolingConfig
from twin.cooling.domain.coolant import delta_t_k
from twin.cooling.domain.network import design_conditions, evaluate
from twin.cooling.site import build_cooling_site
from twin.cooling.v1 import cooling_pb2 as pb
from twin.cooling.v1 import cooling_pb2_grpc as pb_grpc
from twin.core import topics
from twin.core.facility import load_facility_spec
from twin.core.kafka import EventProducer
from twin.core.topics_admin import ensure_topics
from twin.power.v1 import power_pb2 as ppb
from twin.telemetry.v1 import telemetry_pb2 as tpb
from twinctl.__main__ import main as twinctl_main

pytestmark = pytest.mark.timeout(300)

FACILITY = "gb200-nvl72-hall"
SITE = "hall-gb200"
ROW_A = [f"a-{i:04d}" for i in range(8)]
RACKS = ROW_A + [f"b-{i:04d}" for i in range(8)]


def _ts(t: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(round(t * 1e9)))
    return ts


def cooling_config(bootstrap: str, db: str, unique_topic, group: str, **kw) -> CoolingConfig:
    topics_kw = {name: unique_topic(default) for name, default in (
        ("power_topic", topics.POWER_STATE), ("samples_topic", topics.TELEMETRY_SAMPLES),
        ("events_topic", topics.COOLING_EVENTS), ("state_topic", topics.COOLING_STATE),
        ("alerts_topic", topics.COOLING_ALERTS), ("racks_topic", topics.COOLING_RACKS))}
    topics_kw.update(kw)
    return CoolingConfig(kafka_bootstrap=bootstrap, database_url=db, facility=FACILITY, grpc_host="127.0.0.1",
                         grpc_port=0, group_id=group, **topics_kw)


async def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT_S}s: {what}"
        await asyncio.sleep(0.05)


def states(records) -> list[pb.CoolingState]:
    return [pb.CoolingState.FromString(r.value) for r in records]


def alerts(records) -> list[pb.CoolingAlert]:
    return [pb.CoolingAlert.FromString(r.value) for r in records]


def rack_power(rack_id: str, w: float, t: float, site: str = SITE) -> ppb.PowerState:
    return ppb.PowerState(site_id=site, entity_id=rack_id, scope=ppb.POWER_SCOPE_RACK, state_time=_ts(t),
                          input_power_w=w, source=ppb.VALUE_SOURCE_MODELLED)


def event(entity: str, kind: int, t: float, **kw) -> pb.CoolingEvent:
    return pb.CoolingEvent(event_id=str(uuid.uuid4()), site_id=SITE, entity_id=entity, kind=kind, event_time=_ts(t),
                           **kw)


async def test_heat_in_state_out_cdu_failure_alerts_its_racks_bad_events_dlq_whatifs_and_restart(
        kafka_bootstrap, fresh_database, unique_topic, capsys):
    cfg = cooling_config(kafka_bootstrap, fresh_database, unique_topic, f"cooling-it-{uuid.uuid4().hex[:8]}")
    await ensure_topics(kafka_bootstrap, [cfg.power_topic, cfg.samples_topic, cfg.events_topic, cfg.state_topic,
                                          cfg.alerts_topic])
    site = build_cooling_site(load_facility_spec(FACILITY))
    net = site.network
    inv = site.inventory
    rack_w = np.array([120e3 if r.startswith("a") else 110e3 for r in net.rack_ids])
    expected = evaluate(net, rack_w, design_conditions(net))
    t0 = time.time() - 30
    # rack a-0000's coolant sensors say 50 kW (suspect: the model's liquid heat is 102 kW); a-0001's agree
    liquid = expected.rack_liquid_w
    supply = float(expected.rack_supply_c[0])
    flow = float(expected.rack_flow_lpm[0])
    telemetry = []
    for rid, heat in (("a-0000", 50e3), ("a-0001", float(liquid[1]))):
        b = tpb.RackTelemetryBatch(site_id=SITE, rack_id=rid, sample_time=_ts(t0), source="test")
        b.rack.coolant_flow_lpm, b.rack.coolant_supply_temp_c = flow, supply
        b.rack.coolant_return_temp_c = supply + float(delta_t_k(net.secondary_coolant, heat, flow, supply))
        node = inv.node_ids(inv.racks[inv.rack_index[rid]])[0]
        gs = b.nodes.add(node_id=node).gpus
        gs.gpu_index.extend(range(4))
        gs.power_w.extend([1000.0] * 4)
        gs.gpu_temp_c.extend([60.0] * 4)
        gs.mem_temp_c.extend([55.0] * 4)
        telemetry.append((rid, tpb.TelemetrySamples(batch=b)))
    bad_batch = tpb.TelemetrySamples(batch=tpb.RackTelemetryBatch(site_id=SITE, rack_id="z-0009", sample_time=_ts(t0)))

    async with Running(CoolingApp(cfg)) as app, EventProducer(kafka_bootstrap, source="test") as producer, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        for key, msg in [*telemetry, ("z-0009", bad_batch)]:
            await producer.send(cfg.samples_topic, key, msg)
        await wait_for(lambda: app.stats.telemetry_batches >= 2, "telemetry applied")
        # power.state.v1: every rack, a PDU state (not an input: skipped) and a rack of no site here (DLQ)
        pdu = ppb.PowerState(site_id=SITE, entity_id="pdu-a-a0", scope=ppb.POWER_SCOPE_PDU, state_time=_ts(t0),
                             input_power_w=1.0)
        for i, rid in enumerate(net.rack_ids):
            await producer.send(cfg.power_topic, rid, rack_power(rid, rack_w[i], t0))
        await producer.send(cfg.power_topic, "pdu-a-a0", pdu)
        await producer.send(cfg.power_topic, "nowhere-1", rack_power("nowhere-1", 1e3, t0))

        def plant_done(recs):
            return any(s.scope == pb.COOLING_SCOPE_PLANT for s in states(recs))

        got = states(await read_until(kafka_bootstrap, cfg.state_topic, plant_done))
        plant = [s for s in got if s.scope == pb.COOLING_SCOPE_PLANT][-1]
        assert plant.entity_id == SITE and plant.state_time == _ts(t0)
        assert plant.plant.cooling_power_w == pytest.approx(expected.cooling_power_w, rel=1e-9)
        assert plant.plant.it_power_w == pytest.approx(rack_w.sum(), rel=1e-12)
        assert plant.plant.pue_cooling == pytest.approx(expected.pue_cooling_part, rel=1e-9)
        racks = {s.entity_id: s for s in got if s.scope == pb.COOLING_SCOPE_RACK}
        assert set(racks) == set(RACKS)
        assert racks["b-0003"].rack.it_power_w == 110e3
        assert racks["b-0003"].rack.liquid_heat_w + racks["b-0003"].rack.air_heat_w == pytest.approx(110e3)
        assert {s.entity_id for s in got if s.scope == pb.COOLING_SCOPE_CDU} == set(net.cdu_ids)
        dead = await read_until(kafka_bootstrap, cfg.power_topic, lambda rs: len(rs) >= 1, dlq=True)
        assert "nowhere-1" in dict(dead[0].headers)["dlq_reason"].decode()
        dead = await read_until(kafka_bootstrap, cfg.samples_topic, lambda rs: len(rs) >= 1, dlq=True)
        assert "batch.rack_id" in dict(dead[0].headers)["dlq_reason"].decode()
        # suspect sensor: a-0000 only (its ṁ·c_p·ΔT is 50 kW against 102 kW), with both values
        recs = await read_until(kafka_bootstrap, cfg.alerts_topic, lambda rs: any(
            a.kind == pb.ALERT_KIND_SUSPECT_SENSOR for a in alerts(rs)))
        suspect = [a for a in alerts(recs) if a.kind == pb.ALERT_KIND_SUSPECT_SENSOR]
        assert [a.entity_id for a in suspect] == ["a-0000"]
        assert suspect[0].measured_value == pytest.approx(50e3, rel=1e-6)
        assert suspect[0].model_value == pytest.approx(liquid[0], rel=1e-9)
        assert not [a for a in alerts(recs) if a.kind == pb.ALERT_KIND_THROTTLE_PREDICTED]

        # equipment events: both CDUs of loop-a fail; four bad ones go to the DLQ with their reason
        E = pb
        good = [event("cdu-a-1", E.COOLING_EVENT_KIND_CDU_FAILURE, t0 + 10),
                event("cdu-a-2", E.COOLING_EVENT_KIND_CDU_FAILURE, t0 + 11)]
        bad = [event("cdu-x-9", E.COOLING_EVENT_KIND_CDU_FAILURE, t0 + 12),                       # unknown id
               event("cdu-b-1", E.COOLING_EVENT_KIND_PUMP_FAILURE, t0 + 12, flow_fraction=1.5),   # absurd
               event(SITE, E.COOLING_EVENT_KIND_AMBIENT_CHANGE, t0 + 12, dry_bulb_temp_c=20.0,
                     wet_bulb_temp_c=25.0),                                                        # wet > dry
               event("cdu-a-1", E.COOLING_EVENT_KIND_CDU_REPAIR, t0 + 5)]                         # the past
        for e in good + bad:
            await producer.send(cfg.events_topic, e.entity_id, e)
        dead = await read_until(kafka_bootstrap, cfg.events_topic, lambda rs: len(rs) >= 4, dlq=True)
        reasons = sorted(dict(r.headers)["dlq_reason"].decode() for r in dead)
        assert len(reasons) == 4
        for field_name in ("entity_id: unknown CDU 'cdu-x-9'", "flow_fraction: 1.5", "wet_bulb_temp_c",
                           "event_time: older than the last event"):
            assert any(field_name in r for r in reasons), (field_name, reasons)

        def throttled(recs):
            return {a.entity_id for a in alerts(recs) if a.kind == pb.ALERT_KIND_THROTTLE_PREDICTED} >= set(ROW_A)

        recs = await read_until(kafka_bootstrap, cfg.alerts_topic, throttled)
        throttle = [a for a in alerts(recs) if a.kind == pb.ALERT_KIND_THROTTLE_PREDICTED]
        assert sorted(a.entity_id for a in throttle) == ROW_A          # exactly the racks loop-a serves
        gpu_rack = site.gpus.gpu_rack
        for a in throttle:
            r = inv.rack_index[a.entity_id]
            assert sorted(a.gpu_ids) == np.flatnonzero(gpu_rack == r).tolist()
            assert 0 < a.time_to_throttle_s < cfg.horizon_s and a.severity == pb.SEVERITY_CRITICAL
        capacity = [a for a in alerts(recs) if a.kind == pb.ALERT_KIND_CAPACITY_EXCEEDED]
        assert [a.entity_id for a in capacity] == ["loop-a"]

        # stored: rows per published state, the conditions in force
        async with await psycopg.AsyncConnection.connect(fresh_database) as conn:
            cur = await conn.execute("SELECT power_w FROM cooling_state WHERE entity_id = %s ORDER BY time", (SITE,))
            plant_w = [r[0] for r in await cur.fetchall()]
            assert len(plant_w) >= 2 and plant_w[0] == pytest.approx(expected.cooling_power_w, rel=1e-9)
            cur = await conn.execute("SELECT conditions FROM cooling_conditions WHERE site_id = %s", (SITE,))
            cond = (await cur.fetchone())[0]
            assert cond["cdu_up"][:2] == [False, False] and all(cond["cdu_up"][2:])

        # gRPC: state and history from storage, what-ifs from the live twin
        stub = pb_grpc.CoolingServiceStub(channel)
        now = await stub.GetState(pb.GetStateRequest(scope=pb.COOLING_SCOPE_CDU, entity_ids=["cdu-a-1", "cdu-b-1"]))
        assert {s.entity_id: s.cdu.up for s in now.states} == {"cdu-a-1": False, "cdu-b-1": True}
        history = await stub.GetHistory(pb.GetHistoryRequest(entity_id="a-0003", start_time=_ts(t0 - 1)))
        assert [s.state_time.ToNanoseconds() for s in history.states][0] == _ts(t0).ToNanoseconds()
        assert history.states[-1].rack.coolant_flow_lpm == 0.0 and history.states[-1].rack.gpus_at_risk == 72
        one = await stub.WhatIfFailure(pb.WhatIfFailureRequest(cdu_ids=["cdu-b-1"]))
        # loop-b's partner carries cdu-b-1's load: only row a (lost already) throttles
        assert sorted(r.rack_id for r in one.outcome.racks) == ROW_A
        assert list(one.outcome.loops_not_carrying) == ["loop-a"]
        both = await stub.WhatIfFailure(pb.WhatIfFailureRequest(cdu_ids=["cdu-b-1", "cdu-b-2"]))
        assert sorted(r.rack_id for r in both.outcome.racks) == RACKS      # row a already, row b after
        assert sorted(both.outcome.loops_not_carrying) == ["loop-a", "loop-b"]
        assert not both.outcome.redundancy_carries and both.outcome.gpus_affected == 16 * 72
        hot_day = pb.WhatIfSetpointRequest(dry_bulb_temp_c=42.0, wet_bulb_temp_c=25.0)
        hot = await stub.WhatIfSetpoint(hot_day)
        now_cond = design_conditions(net).with_(cdu_up=np.array([c not in ("cdu-a-1", "cdu-a-2") for c in net.cdu_ids]))
        want = evaluate(net, rack_w, setpoint_request(net, now_cond, hot_day)[0])
        assert hot.outcome.plant_power_after_w == pytest.approx(want.plant_power_w, rel=1e-9)
        assert hot.outcome.facility_supply_temp_after_c == pytest.approx(want.facility_supply_c, rel=1e-9)
        assert hot.outcome.pue_cooling_after == pytest.approx(want.pue_cooling_part, rel=1e-9)
        for call, request, code, field_name in (
            (stub.WhatIfFailure, pb.WhatIfFailureRequest(), grpc.StatusCode.INVALID_ARGUMENT, "cdu_ids"),
            (stub.WhatIfFailure, pb.WhatIfFailureRequest(cdu_ids=["cdu-x-9"]), grpc.StatusCode.NOT_FOUND, "cdu_ids"),
            (stub.WhatIfFailure, pb.WhatIfFailureRequest(pumps=[pb.PumpFlow(cdu_id="cdu-b-1", flow_fraction=2.0)]),
             grpc.StatusCode.INVALID_ARGUMENT, "pumps.flow_fraction"),
            (stub.WhatIfSetpoint, pb.WhatIfSetpointRequest(facility_supply_temp_c=99.0),
             grpc.StatusCode.INVALID_ARGUMENT, "facility_supply_temp_c"),
            (stub.WhatIfSetpoint, pb.WhatIfSetpointRequest(), grpc.StatusCode.INVALID_ARGUMENT,
             "facility_supply_temp_c"),
            (stub.GetHistory, pb.GetHistoryRequest(entity_id="a-0003"), grpc.StatusCode.INVALID_ARGUMENT,
             "start_time"),
            (stub.GetState, pb.GetStateRequest(entity_ids=["nope"]), grpc.StatusCode.NOT_FOUND, "entity_ids[0]"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(request)
            assert err.value.code() == code and err.value.details().startswith(field_name), err.value.details()

        # the same answers through twinctl, as tables
        target = ["cooling", "--target", f"127.0.0.1:{app.grpc_port}"]
        capsys.readouterr()
        assert await asyncio.to_thread(twinctl_main, [*target, "whatif-failure", "--cdus", "cdu-b-1,cdu-b-2"]) == 0
        table = capsys.readouterr().out
        assert "redundancy carries the load: NO (loops not carrying: loop-a, loop-b)" in table, table
        assert sorted(ln.split()[0] for ln in table.splitlines() if ln.split()[0] in RACKS) == RACKS, table
        assert await asyncio.to_thread(twinctl_main, [*target, "state", "--scope", "cdu"]) == 0
        table = capsys.readouterr().out
        assert [ln.split()[0] for ln in table.splitlines() if "DOWN" in ln] == ["cdu-a-1", "cdu-a-2"], table
        assert await asyncio.to_thread(twinctl_main, [*target, "whatif-setpoint", "--facility-supply-c", "99"]) == 2
        assert await asyncio.to_thread(twinctl_main, [*target, "whatif-failure", "--cdus", "cdu-x-9"]) == 3

    # a restarted process: heat and conditions from storage; an event older than a stored one is refused
    again = CoolingApp(cfg)
    async with Running(again), EventProducer(kafka_bootstrap, source="test") as producer:
        assert again.live is not None
        assert list(again.live.cond.cdu_up[:2]) == [False, False]
        assert again.live.rack_it_w.tolist() == rack_w.tolist()
        late = event("cdu-a-2", pb.COOLING_EVENT_KIND_CDU_REPAIR, t0 + 6)
        await producer.send(cfg.events_topic, late.entity_id, late)
        dead = await read_until(kafka_bootstrap, cfg.events_topic, lambda rs: any(
            late.event_id.encode() in r.value for r in rs), dlq=True)
        assert "event_time" in dict(dead[-1].headers)["dlq_reason"].decode()


# -- coupling with the power twin (issue 10 item 6) ------------------------------------------------------


def telemetry_tick(inv, t: float, tensor: float) -> list[tuple[str, tpb.TelemetrySamples]]:
    """Every rack's GPU activity for one tick (no measured power: the power twin models it)."""
    out = []
    for rack in inv.racks:
        b = tpb.RackTelemetryBatch(site_id=SITE, rack_id=rack.rack_id, sample_time=_ts(t), source="test")
        for j, node_id in enumerate(inv.node_ids(rack)):
            n = int(inv.node_gpus[rack.first_node + j])
            gs = b.nodes.add(node_id=node_id).gpus
            gs.gpu_index.extend(range(n))
            gs.tensor_active.extend([tensor] * n)
            gs.sm_active.extend([min(tensor + 0.05, 1.0)] * n)
            gs.dram_active.extend([0.3] * n)
        out.append((rack.rack_id, tpb.TelemetrySamples(batch=b)))
    return out


async def test_power_and_cooling_loop_converges_within_a_tick_of_a_load_step(
        kafka_bootstrap, fresh_database, unique_topic):
    """power.state.v1 (rack heat) -> cooling -> cooling.state.v1 (plant cooling power) -> power's site total
    and PUE, both apps in this process, coupled through the broker only. Cooling power depends on the racks'
    heat (IT power), never on the site total, so the loop has no gain: after a load step the site power
    settles at most one tick later (the cooling state of the previous tick) and then stays put."""
    from twin.power.adapters.stream import RACK_CONTRIBUTIONS
    from twin.power.app import PowerApp, PowerConfig
    from twin.power.domain import evaluate as power_evaluate
    from twin.power.site import build_site_model

    group = uuid.uuid4().hex[:8]
    ccfg = cooling_config(kafka_bootstrap, fresh_database, unique_topic, f"cooling-loop-{group}")
    pcfg = PowerConfig(
        kafka_bootstrap=kafka_bootstrap, database_url=fresh_database, facility=FACILITY, grpc_host="127.0.0.1",
        grpc_port=0, http_host="127.0.0.1", http_port=0, group_id=f"power-loop-{group}",
        samples_topic=ccfg.samples_topic, state_topic=ccfg.power_topic, racks_topic=unique_topic(RACK_CONTRIBUTIONS),
        alerts_topic=unique_topic(topics.POWER_ALERTS), plans_topic=unique_topic(topics.POWER_PLANS),
        grid_topic=unique_topic(topics.GRID_EVENTS), jobs_topic=unique_topic(topics.JOBS_STATE),
        cooling_topic=ccfg.state_topic)
    await ensure_topics(kafka_bootstrap, [ccfg.power_topic, ccfg.samples_topic, ccfg.events_topic, ccfg.state_topic,
                                          ccfg.alerts_topic, pcfg.racks_topic, pcfg.alerts_topic, pcfg.plans_topic,
                                          pcfg.grid_topic, pcfg.jobs_topic])
    model = build_site_model(load_facility_spec(FACILITY))
    cnet = build_cooling_site(load_facility_spec(FACILITY)).network
    inv = model.inventory
    t0 = time.time() - 60
    loads = [0.4, 0.4, 0.4, 0.9, 0.9, 0.9]            # a load step at tick 3
    ticks = [t0 + k for k in range(len(loads))]
    async with Running(PowerApp(pcfg)) as power, Running(CoolingApp(ccfg)) as cooling, \
            EventProducer(kafka_bootstrap, source="test") as producer:
        for t, load in zip(ticks, loads, strict=True):
            for key, msg in telemetry_tick(inv, t, load):
                await producer.send(pcfg.samples_topic, key, msg)

            def settled(t=t) -> bool:
                p, c = power.site, cooling.pipeline
                return (p is not None and bool((p.rack_time == t).all()) and p.prev_time_s == t and not p.dirty
                        and c is not None and c.floor_s >= t and c.last_plant is not None
                        and power.view.cooling_w == c.last_plant.plant.cooling_power_w)

            await wait_for(settled, f"tick {t - t0:.0f} through power, cooling and back")
        records = await read_to_end(kafka_bootstrap, pcfg.state_topic)
    got = [ppb.PowerState.FromString(r.value) for r in records]
    final_site: dict[float, ppb.PowerState] = {}
    rack_w: dict[float, dict[str, float]] = {}
    for s in got:                                    # in offset order: the last site state of a tick is final
        t = s.state_time.ToNanoseconds()
        if s.scope == ppb.POWER_SCOPE_SITE:
            final_site[t] = s
        elif s.scope == ppb.POWER_SCOPE_RACK:
            rack_w.setdefault(t, {})[s.entity_id] = s.input_power_w
    site_w, cooling_w = [], []
    for k, t in enumerate(ticks):
        ns = _ts(t).ToNanoseconds()
        site = final_site[ns]
        racks = np.array([rack_w[ns][rid] for rid in cnet.rack_ids])
        want_cooling = evaluate(cnet, racks, design_conditions(cnet)).cooling_power_w   # the cooling domain
        assert site.site.cooling_power_w > 0 or k == 0    # tick 0 is evaluated before any cooling state
        # the site total is the power domain's chain with the cooling power it had: consistent every tick
        chain = power_evaluate(model.network, np.array([rack_w[ns][rid] for rid in model.network.rack_ids]),
                               site_extra_w=site.site.cooling_power_w)
        assert site.input_power_w == pytest.approx(chain.site_w, rel=1e-9)
        assert site.site.pue == pytest.approx(site.input_power_w / site.output_power_w, rel=1e-9)
        site_w.append(site.input_power_w)
        cooling_w.append((site.site.cooling_power_w, want_cooling))
    # ticks 1-2: the cooling of this load; tick 3: the new load with the old cooling (one tick behind), or already
    # with the new one (power's site stage and cooling read the same rack states in parallel: cooling's answer can
    # reach power before the site is evaluated); ticks 4-5: the new fixed point, and it holds (no oscillation, no
    # run-away)
    for k in (1, 2, 4, 5):
        assert cooling_w[k][0] == pytest.approx(cooling_w[k][1], rel=1e-9), k
    behind = cooling_w[3][0] == pytest.approx(cooling_w[2][1], rel=1e-9)
    assert behind or cooling_w[3][0] == pytest.approx(cooling_w[3][1], rel=1e-9), cooling_w[3]
    assert site_w[1] == site_w[2] and site_w[4] == site_w[5]
    assert site_w[4] > site_w[3] > site_w[2] if behind else site_w[4] == site_w[3] > site_w[2]
    assert cooling_w[4][0] > cooling_w[2][0]


# -- equipment telemetry (issue 10 item 3): ingest (protobuf and Redfish) -> rows -> cooling state ---------


async def test_equipment_telemetry_protobuf_and_redfish_to_rows_cooling_state_and_suspect_cdu(
        kafka_bootstrap, fresh_database, unique_topic):
    import aiohttp

    from twin.core.testing.kafka import free_port
    from twin.ingest.app import IngestApp, IngestConfig

    token = "redfish-it-token"
    group = uuid.uuid4().hex[:8]
    ccfg = cooling_config(kafka_bootstrap, fresh_database, unique_topic, f"cooling-eq-{group}")
    port = free_port()
    icfg = IngestConfig(kafka_bootstrap=kafka_bootstrap, database_url=fresh_database, facility=FACILITY,
                        group_id=f"ingest-eq-{group}", source_topic=unique_topic(topics.FACILITY_TELEMETRY),
                        samples_topic=ccfg.samples_topic, http_port=port, http_host="127.0.0.1", redfish_token=token)
    await ensure_topics(kafka_bootstrap, [ccfg.power_topic, ccfg.samples_topic, ccfg.events_topic, ccfg.state_topic,
                                          ccfg.alerts_topic, icfg.source_topic])
    site = build_cooling_site(load_facility_spec(FACILITY))
    net = site.network
    rack_w = np.full(net.n_racks, 120e3)
    st = evaluate(net, rack_w, design_conditions(net))
    coolant = net.secondary_coolant
    now = time.time()

    def consistent(i: int, heat: float) -> dict:
        """Secondary flow and temperatures of CDU i that give `heat` by ṁ·c_p·ΔT."""
        flow, supply = float(st.cdu_flow_lpm[i]), float(st.loop_supply_c[net.cdu_loop[i]])
        return {"secondary_flow_lpm": flow, "secondary_supply_temp_c": supply,
                "secondary_return_temp_c": supply + float(delta_t_k(coolant, heat, flow, supply))}

    nan = float("nan")
    i_a1, i_b1, i_b2 = (net.cdu_ids.index(c) for c in ("cdu-a-1", "cdu-b-1", "cdu-b-2"))
    batch = tpb.RackTelemetryBatch(site_id=SITE, sample_time=_ts(now), sequence=1, source="test")
    eq = batch.equipment
    # cdu-a-1 says it removes three times what its own flow and temperatures carry: a suspect sensor
    eq.cdus.add(cdu_id="cdu-a-1", heat_removed_w=3 * float(st.cdu_heat_w[i_a1]), differential_pressure_kpa=nan,
                primary_supply_temp_c=nan, primary_return_temp_c=nan, primary_flow_lpm=nan, pump_speed_pct=80.0,
                **consistent(i_a1, float(st.cdu_heat_w[i_a1])))
    eq.cdus.add(cdu_id="cdu-b-1", heat_removed_w=float(st.cdu_heat_w[i_b1]), differential_pressure_kpa=120.0,
                primary_supply_temp_c=32.0, primary_return_temp_c=40.0, primary_flow_lpm=900.0, pump_speed_pct=70.0,
                **consistent(i_b1, float(st.cdu_heat_w[i_b1])))
    eq.crahs.add(crah_id=net.crah_ids[0], supply_air_temp_c=24.0, return_air_temp_c=36.5, fan_speed_pct=55.0)
    eq.plant.CopyFrom(tpb.PlantSample(outdoor_temp_c=30.0, wet_bulb_temp_c=21.0, tower_power_w=40e3,
                                      chiller_power_w=nan))
    bad = tpb.RackTelemetryBatch(site_id=SITE, sample_time=_ts(now), sequence=2, source="test")
    bad.equipment.cdus.add(cdu_id="cdu-z-9", heat_removed_w=1e3)
    bad.equipment.crahs.add(crah_id=net.crah_ids[1], supply_air_temp_c=24.0, return_air_temp_c=95.0,
                            fan_speed_pct=nan)
    # the Redfish form: a CoolingUnit with its coolant connectors and pumps expanded
    b2 = consistent(i_b2, float(st.cdu_heat_w[i_b2]))
    cooling_unit = {
        "@odata.type": "#CoolingUnit.v1_5_0.CoolingUnit", "@odata.id": "/redfish/v1/ThermalEquipment/CDUs/cdu-b-2",
        "Id": "cdu-b-2", "EquipmentType": "CDU",
        "PrimaryCoolantConnectors": {"Members": [{
            "@odata.id": "/redfish/v1/ThermalEquipment/CDUs/cdu-b-2/PrimaryCoolantConnectors/1",
            "FlowLitersPerMinute": {"Reading": 900}, "SupplyTemperatureCelsius": {"Reading": 32.0},
            "ReturnTemperatureCelsius": {"Reading": 41.0}}]},
        "SecondaryCoolantConnectors": {"Members": [{
            "@odata.id": "/redfish/v1/ThermalEquipment/CDUs/cdu-b-2/SecondaryCoolantConnectors/1",
            "FlowLitersPerMinute": {"Reading": b2["secondary_flow_lpm"]},
            "SupplyTemperatureCelsius": {"Reading": b2["secondary_supply_temp_c"]},
            "ReturnTemperatureCelsius": {"Reading": b2["secondary_return_temp_c"]},
            "DeltaPressurekPa": {"Reading": 95.5}, "HeatRemovedkW": {"Reading": float(st.cdu_heat_w[i_b2]) / 1e3}}]},
        "Pumps": {"Members": [{"PumpSpeedPercent": {"Reading": 60}}, {"PumpSpeedPercent": {"Reading": 70}}]},
    }

    async with Running(IngestApp(icfg)) as ingest, Running(CoolingApp(ccfg)) as cooling, \
            EventProducer(kafka_bootstrap, source="test") as producer, aiohttp.ClientSession() as http:
        await producer.send(icfg.source_topic, SITE, batch)
        await producer.send(icfg.source_topic, SITE, bad)
        async with http.post(f"http://127.0.0.1:{port}/redfish/v1/ingest", json=cooling_unit,
                             headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 202, await resp.text()
            assert (await resp.json())["equipment"] == ["cdu-b-2"]
        dead = await read_until(kafka_bootstrap, icfg.source_topic, lambda rs: len(rs) >= 1, dlq=True)
        reason = dict(dead[0].headers)["dlq_reason"].decode()
        assert "equipment.cdus[0].cdu_id: unknown CDU 'cdu-z-9'" in reason and "return_air_temp_c: 95.0" in reason
        await wait_for(lambda: cooling.stats.equipment_readings >= 3, "three CDUs' readings at the cooling twin")
        assert ingest.ingest_stats.equipment_batches == 2
        async with await psycopg.AsyncConnection.connect(fresh_database) as conn:
            cur = await conn.execute("SELECT equipment_id, kind, source, flow_lpm, differential_pressure_kpa, speed_pct,"
                                     " heat_removed_w, return_temp_c, outdoor_temp_c, chiller_power_w"
                                     " FROM telemetry_equipment ORDER BY equipment_id")
            rows = {r[0]: r[1:] for r in await cur.fetchall()}
        assert set(rows) == {"cdu-a-1", "cdu-b-1", "cdu-b-2", net.crah_ids[0], SITE}
        assert rows["cdu-b-1"][:5] == ("cdu", "test", pytest.approx(st.cdu_flow_lpm[i_b1]), 120.0, 70.0)
        assert rows["cdu-a-1"][3] is None                                # NaN on the wire -> NULL
        assert rows["cdu-b-2"][:5] == ("cdu", "redfish", pytest.approx(b2["secondary_flow_lpm"]), 95.5, 65.0)
        assert rows["cdu-b-2"][5] == pytest.approx(st.cdu_heat_w[i_b2])
        assert rows[net.crah_ids[0]][6] == 36.5 and rows[SITE][7] == 30.0 and rows[SITE][8] is None

        # heat arrives: the tick carries the measured values and checks the CDUs' heat sensors
        for i, rid in enumerate(net.rack_ids):
            await producer.send(ccfg.power_topic, rid, rack_power(rid, rack_w[i], now))
        got = states(await read_until(kafka_bootstrap, ccfg.state_topic, lambda rs: any(
            s.scope == pb.COOLING_SCOPE_PLANT for s in states(rs))))
        by = {s.entity_id: s for s in got}
        assert by["cdu-b-1"].cdu.differential_pressure_kpa == 120.0
        assert by["cdu-b-1"].source == pb.VALUE_SOURCE_MIXED and by["cdu-a-2"].source == pb.VALUE_SOURCE_MODELLED
        assert by["cdu-b-2"].cdu.differential_pressure_kpa == 95.5
        assert by[net.crah_ids[0]].crah.return_air_temp_c == 36.5
        recs = await read_until(kafka_bootstrap, ccfg.alerts_topic, lambda rs: any(
            a.kind == pb.ALERT_KIND_SUSPECT_SENSOR for a in alerts(rs)))
        suspect = [a for a in alerts(recs) if a.kind == pb.ALERT_KIND_SUSPECT_SENSOR]
        assert [(a.entity_id, a.suspect_sensor_id) for a in suspect] == [("cdu-a-1", "cdu-a-1/heat_removed")]
        assert suspect[0].measured_value == pytest.approx(3 * st.cdu_heat_w[i_a1])
        assert suspect[0].model_value == pytest.approx(st.cdu_heat_w[i_a1], rel=1e-6)
