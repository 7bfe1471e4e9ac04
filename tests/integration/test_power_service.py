"""The power twin as a service against the real broker (Tansu or TWIN_KAFKA_BOOTSTRAP) and real PostgreSQL,
with real gRPC and HTTP over loopback.

Facility: the DGX H100 SU preset (8 racks of 4 DGX H100, 256 GPUs) with an explicit chain: two
transformers, three 120 kW UPS on one bus declared N (no redundancy: legal, since the three carry
the 326 kW nameplate), one 50 kW PDU per rack. At full load one UPS failure pushes the two others
above their rating. No on-site sources, so a curtailment is met by GPU caps. Expected numbers come from the domain functions directly (site_tick,
what_if_failure), not from the service.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import aiohttp
import grpc
import numpy as np
import psycopg
import pytest
import yaml
from service_harness import WAIT_S, Running, read_to_end, read_until

from twin.cooling.v1 import cooling_pb2 as cpb
from twin.core import topics
from twin.core.facility import load_facility_spec
from twin.core.facility.spec import PRESETS_DIR
from twin.core.kafka import EventProducer
from twin.core.topics_admin import ensure_topics
from twin.jobs.v1 import jobs_pb2 as jpb
from twin.power.adapters.stream import RACK_CONTRIBUTIONS
from twin.power.app import PowerApp, PowerConfig
from twin.power.domain import evaluate, site_tick, what_if_failure
from twin.power.site import build_site_model
from twin.power.v1 import power_pb2 as pb
from twin.power.v1 import power_pb2_grpc as pb_grpc
from twin.telemetry.v1 import telemetry_pb2 as tpb
from twinctl.__main__ import main as twinctl_main

pytestmark = pytest.mark.timeout(240)

SITE = "it-power"
TOKEN = "openadr-test-token"
UPS_EFF = {"name": "double-conversion", "kind": "loss_polynomial", "rated_w": 120000,
           "loss_coefficients": [0.012371, 0.012371, 0.0061856]}


@pytest.fixture
def facility_file(tmp_path: Path) -> Path:
    spec = yaml.safe_load((PRESETS_DIR / "dgx-h100-su.yaml").read_text())
    spec["site_id"] = SITE
    p = spec["power"]
    p["on_site"] = []   # no genset: a curtailment is met by GPU caps
    for k in ("transformer_mva", "transformers", "ups_kw", "ups_units", "ups_efficiency", "racks_per_pdu", "pdu_kw"):
        p.pop(k)
    p["topology"] = {
        "transformers": [{"id": f"tx-{i}", "rating_kva": 1000, "no_load_loss_w": 1000, "load_loss_w": 8000,
                          "inputs": [feed]} for i, feed in ((1, "feed-a"), (2, "feed-b"))],
        "ups": [{"id": f"ups-{i}", "rating_kw": 120, "inputs": ["tx-1", "tx-2"], "efficiency": UPS_EFF}
                for i in (1, 2, 3)],
        "ups_groups": [{"id": "ups-bus", "redundancy": "N", "members": ["ups-1", "ups-2", "ups-3"]}],
        "pdus": [{"id": f"pdu-{i}", "rating_kw": 50, "phases": 3, "inputs": ["ups-bus"], "racks": [f"su1-{i:04d}"]}
                 for i in range(8)],
    }
    path = tmp_path / "facility.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def config(kafka_bootstrap: str, db: str, facility: Path, unique_topic, group: str, **kw) -> PowerConfig:
    return PowerConfig(
        kafka_bootstrap=kafka_bootstrap, database_url=db, facility=str(facility), grpc_host="127.0.0.1", grpc_port=0,
        http_host="127.0.0.1", http_port=0, openadr_token=TOKEN, group_id=group,
        samples_topic=unique_topic(topics.TELEMETRY_SAMPLES), state_topic=unique_topic(topics.POWER_STATE),
        racks_topic=unique_topic(RACK_CONTRIBUTIONS), alerts_topic=unique_topic(topics.POWER_ALERTS),
        plans_topic=unique_topic(topics.POWER_PLANS), grid_topic=unique_topic(topics.GRID_EVENTS),
        jobs_topic=unique_topic(topics.JOBS_STATE), cooling_topic=unique_topic(topics.COOLING_STATE), **kw)


def states(records) -> list[pb.PowerState]:
    return [pb.PowerState.FromString(r.value) for r in records]


class Load:
    """A full-load tick for every rack: GPU activity everywhere, DCGM power on half the GPUs of even racks,
    PDU readings on racks 0-3 (rack 3 reads 25 % above the model: a suspect sensor), none on racks 4-7."""

    def __init__(self, facility: Path, t: float) -> None:
        self.model = m = build_site_model(load_facility_spec(str(facility)))
        inv = m.inventory
        n = inv.n_gpus
        rng = np.random.default_rng(7)
        self.tensor = rng.uniform(0.6, 1.0, n)
        self.sm = np.minimum(self.tensor + 0.05, 1.0)
        self.dram = rng.uniform(0.2, 0.5, n)
        gpu_rack = inv.node_rack[inv.gpu_node]
        self.measured_gpu = np.where((gpu_rack % 2 == 0) & (inv.gpu_local_index % 2 == 0), 650.0, np.nan)
        first = site_tick(m.gpu, m.layout, m.network, tensor_active=self.tensor, sm_active=self.sm,
                          dram_active=self.dram, measured_gpu_w=self.measured_gpu)
        self.pdu = np.full(len(inv.racks), np.nan)
        self.pdu[:4] = first.racks.rack_input_w[:4] * np.array([1.01, 0.99, 1.02, 1.25])
        self.tick = site_tick(m.gpu, m.layout, m.network, tensor_active=self.tensor, sm_active=self.sm,
                              dram_active=self.dram, measured_gpu_w=self.measured_gpu, measured_rack_w=self.pdu)
        self.t = t

    def batches(self) -> list[tuple[str, tpb.TelemetrySamples]]:
        inv = self.model.inventory
        out = []
        for r, rack in enumerate(inv.racks):
            b = tpb.RackTelemetryBatch(site_id=SITE, rack_id=rack.rack_id, sequence=1, source="test")
            b.sample_time.FromNanoseconds(int(self.t * 1e9))
            for j, node_id in enumerate(inv.node_ids(rack)):
                node = rack.first_node + j
                g = np.arange(inv.node_first_gpu[node], inv.node_first_gpu[node] + inv.node_gpus[node])
                gs = b.nodes.add(node_id=node_id).gpus
                gs.gpu_index.extend(range(len(g)))
                if not np.isnan(self.measured_gpu[g]).all():
                    gs.power_w.extend(self.measured_gpu[g].tolist())
                gs.tensor_active.extend(self.tensor[g].tolist())
                gs.sm_active.extend(self.sm[g].tolist())
                gs.dram_active.extend(self.dram[g].tolist())
            if not np.isnan(self.pdu[r]):
                b.rack.pdu_input_power_w.extend([self.pdu[r] / 3] * 3)
            out.append((rack.rack_id, tpb.TelemetrySamples(batch=b)))
        return out


async def send_load(bootstrap: str, cfg: PowerConfig, load: Load, extra: list | None = None) -> None:
    async with EventProducer(bootstrap, source="test") as producer:
        for key, msg in load.batches() + (extra or []):
            await producer.send(cfg.samples_topic, key, msg)


async def ensure(cfg: PowerConfig, bootstrap: str) -> None:
    await ensure_topics(bootstrap, [cfg.samples_topic, cfg.state_topic, cfg.racks_topic, cfg.alerts_topic,
                                    cfg.plans_topic, cfg.grid_topic, cfg.jobs_topic, cfg.cooling_topic])


async def test_telemetry_in_state_out_site_total_alerts_history_and_failure_whatif(
        kafka_bootstrap, fresh_database, facility_file, unique_topic, capsys):
    cfg = config(kafka_bootstrap, fresh_database, facility_file, unique_topic, f"power-it-{uuid.uuid4().hex[:8]}")
    await ensure(cfg, kafka_bootstrap)
    load = Load(facility_file, t=time.time())
    expected = load.tick.chain
    unknown = tpb.TelemetrySamples(batch=tpb.RackTelemetryBatch(site_id=SITE, rack_id="nowhere-0001"))
    unknown.batch.sample_time.FromNanoseconds(int(load.t * 1e9))
    async with Running(PowerApp(cfg)) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        await send_load(kafka_bootstrap, cfg, load, extra=[("nowhere-0001", unknown)])

        def site_done(recs):
            return any(s.scope == pb.POWER_SCOPE_SITE and s.input_power_w == pytest.approx(expected.site_w, rel=1e-9)
                       for s in states(recs))

        recs = await read_until(kafka_bootstrap, cfg.state_topic, site_done)
        got = states(recs)
        site = [s for s in got if s.scope == pb.POWER_SCOPE_SITE][-1]
        assert site.site_id == SITE and site.entity_id == SITE
        assert site.output_power_w == pytest.approx(expected.it_w, rel=1e-9)
        assert site.source == pb.VALUE_SOURCE_MIXED        # racks 0-3 measured, 4-7 modelled
        # racks: keyed by rack, measured PDU wins, modelled racks say which GPUs were modelled
        racks = {s.entity_id: s for s in got if s.scope == pb.POWER_SCOPE_RACK}
        assert len(racks) == 8
        by_key = {r.key.decode() for r in recs if pb.PowerState.FromString(r.value).scope == pb.POWER_SCOPE_RACK}
        assert by_key == set(racks)
        r0, r4, r5 = racks["su1-0000"], racks["su1-0004"], racks["su1-0005"]
        assert r0.source == pb.VALUE_SOURCE_MEASURED and r0.input_power_w == pytest.approx(load.pdu[0], rel=1e-12)
        assert r4.source == pb.VALUE_SOURCE_MIXED and (r4.rack.measured_gpus, r4.rack.modelled_gpus) == (16, 16)
        assert r5.source == pb.VALUE_SOURCE_MODELLED and (r5.rack.measured_gpus, r5.rack.modelled_gpus) == (0, 32)
        assert r4.input_power_w == pytest.approx(load.tick.rack_w[4], rel=1e-9)
        # components: every PDU, UPS, transformer and feed, keyed by its id
        comps = {s.entity_id: s for s in got if s.scope not in (pb.POWER_SCOPE_RACK, pb.POWER_SCOPE_SITE)}
        net = load.model.network
        assert set(comps) == set(net.comp_ids)
        last = {s.entity_id: s for s in got}
        i_ups = net.comp_ids.index("ups-1")
        assert last["ups-1"].output_power_w == pytest.approx(expected.comp_output_w[i_ups], rel=1e-9)

        # alerts: rack 3's PDU reads 25 % above the model (suspect); the bad batch went to the DLQ with a reason
        alerts = await read_until(kafka_bootstrap, cfg.alerts_topic, lambda rs: any(
            pb.PowerAlert.FromString(r.value).kind == pb.ALERT_KIND_SUSPECT_SENSOR for r in rs))
        suspect = [a for a in map(lambda r: pb.PowerAlert.FromString(r.value), alerts)
                   if a.kind == pb.ALERT_KIND_SUSPECT_SENSOR]
        assert [a.entity_id for a in suspect] == ["su1-0003"]
        dead = await read_until(kafka_bootstrap, cfg.samples_topic, lambda rs: len(rs) >= 1, dlq=True)
        reason = dict(dead[0].headers)["dlq_reason"].decode()
        assert "batch.rack_id" in reason and "nowhere-0001" in reason

        # stored: rack rows and the site row of that tick; gRPC answers from storage
        async with await psycopg.AsyncConnection.connect(fresh_database) as conn:
            cur = await conn.execute("SELECT count(*) FROM power_state WHERE scope = %s", (pb.POWER_SCOPE_RACK,))
            assert (await cur.fetchone())[0] == 8
            cur = await conn.execute("SELECT input_power_w FROM power_state WHERE entity_id = %s", (SITE,))
            assert [r[0] for r in await cur.fetchall()][-1] == pytest.approx(expected.site_w, rel=1e-9)
        stub = pb_grpc.PowerServiceStub(channel)
        answer = await stub.GetSiteState(pb.GetSiteStateRequest(include_components=True))
        assert answer.site.input_power_w == pytest.approx(expected.site_w, rel=1e-9)
        assert {c.entity_id for c in answer.components} == set(net.comp_ids)
        rack = await stub.GetRackState(pb.GetRackStateRequest(rack_id="su1-0005"))
        assert rack.state.input_power_w == pytest.approx(load.tick.rack_w[5], rel=1e-9)
        history = await stub.GetHistory(pb.GetHistoryRequest(entity_id="su1-0005", start_time=_ts(load.t - 60)))
        assert [s.input_power_w for s in history.states] == [pytest.approx(load.tick.rack_w[5], rel=1e-9)]

        # UPS failure what-if: the two others carry the bus and both go above their 120 kW rating
        want = what_if_failure(net, load.tick.rack_w, ["ups-1"])
        assert sorted(net.comp_ids[i] for i in want.over_rating) == ["ups-2", "ups-3"]
        failure = await stub.WhatIfComponentFailure(pb.WhatIfComponentFailureRequest(component_ids=["ups-1"]))
        assert sorted(failure.over_rating_ids) == ["ups-2", "ups-3"]
        assert not failure.unpowered_rack_ids
        moved = {m.component_id: m for m in failure.moved}
        assert moved["ups-2"].after_w > moved["ups-2"].rating_w == 120_000
        assert failure.site_power_before_w == pytest.approx(expected.site_w, rel=1e-9)

        # invalid requests name the field
        for call, request, code, field in (
            (stub.WhatIfComponentFailure, pb.WhatIfComponentFailureRequest(), grpc.StatusCode.INVALID_ARGUMENT,
             "component_ids"),
            (stub.WhatIfComponentFailure, pb.WhatIfComponentFailureRequest(component_ids=["ups-9"]),
             grpc.StatusCode.NOT_FOUND, "component_ids[0]"),
            (stub.PlanCurtailment, pb.PlanCurtailmentRequest(limit_kw=100, duration_s=0),
             grpc.StatusCode.INVALID_ARGUMENT, "duration_s"),
            # found by tests/fuzz/test_fuzz_power.py: 1.8e305 kW x 1e3 overflowed to inf inside the planner (INTERNAL)
            (stub.PlanCurtailment, pb.PlanCurtailmentRequest(limit_kw=1.7976931348623159e305, duration_s=1),
             grpc.StatusCode.INVALID_ARGUMENT, "limit_kw"),
            (stub.WhatIfPowerCap, pb.WhatIfPowerCapRequest(cap_w=300), grpc.StatusCode.INVALID_ARGUMENT, "target"),
            (stub.WhatIfPowerCap, pb.WhatIfPowerCapRequest(gpus=pb.GpuIds(gpu_ids=[9999]), cap_w=300),
             grpc.StatusCode.INVALID_ARGUMENT, "gpus.gpu_ids"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(request)
            assert err.value.code() == code and err.value.details().startswith(field), err.value.details()

        # the same answers through twinctl, as tables
        target = ["power", "--target", f"127.0.0.1:{app.grpc_port}"]
        capsys.readouterr()
        assert await asyncio.to_thread(twinctl_main, [*target, "whatif-failure", "ups-1"]) == 0
        table = capsys.readouterr().out
        over_lines = [ln.split()[0] for ln in table.splitlines() if ln.endswith("OVER RATING")]
        assert over_lines == ["ups-2", "ups-3"], table
        assert await asyncio.to_thread(twinctl_main, [*target, "state", "--components"]) == 0
        table = capsys.readouterr().out
        assert f"import {expected.site_w / 1e6:.3f} MW" in table and "ups-bus" in table, table
        assert await asyncio.to_thread(twinctl_main, [*target, "whatif-failure", "ups-9"]) == 3

        # the jobs and cooling twins' states: a running job is cappable by id and pausable in a plan; the
        # plant's cooling power joins the site total at the next tick
        job = jpb.JobState(job_id="job-it", status=jpb.JOB_STATUS_RUNNING,
                           spec=jpb.JobSpec(priority=1, checkpoint_interval_s=1800, checkpoint_write_s=60),
                           placement=jpb.Placement(gpu_ids=range(64)))
        job.state_time.FromNanoseconds(int(load.t * 1e9))
        plant = cpb.CoolingState(site_id=SITE, entity_id=SITE, scope=cpb.COOLING_SCOPE_PLANT,
                                 source=cpb.VALUE_SOURCE_MODELLED, plant=cpb.PlantDetail(cooling_power_w=30_000.0))
        plant.state_time.FromNanoseconds(int(load.t * 1e9))
        async with EventProducer(kafka_bootstrap, source="test") as producer:
            await producer.send(cfg.jobs_topic, "job-it", job)
            await producer.send(cfg.cooling_topic, SITE, plant)

        async def job_cap():
            try:
                return await stub.WhatIfPowerCap(pb.WhatIfPowerCapRequest(job_id="job-it", cap_w=300))
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND, exc.details()
                return None

        deadline = time.monotonic() + WAIT_S
        by_job = await job_cap()
        while by_job is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            by_job = await job_cap()
        assert by_job is not None and by_job.gpus == 64 and by_job.gpu_power_saved_w > 0
        deep = await stub.PlanCurtailment(pb.PlanCurtailmentRequest(limit_kw=0.4 * expected.site_w / 1e3,
                                                                    deadline_s=600, duration_s=1800))
        assert list(deep.plan.paused_job_ids) == ["job-it"] and not deep.plan.meets_limit
        assert deep.plan.lost_work_gpu_s == 0          # 600 s is time enough to write its 60 s checkpoint

        later = Load(facility_file, t=load.t + 1)
        with_cooling = evaluate(net, later.tick.rack_w, site_extra_w=30_000.0).site_w
        await send_load(kafka_bootstrap, cfg, later)
        recs = await read_until(kafka_bootstrap, cfg.state_topic, lambda rs: any(
            s.scope == pb.POWER_SCOPE_SITE and s.input_power_w == pytest.approx(with_cooling, rel=1e-9)
            for s in states(rs)))
        site = [s for s in states(recs) if s.scope == pb.POWER_SCOPE_SITE][-1]
        assert site.site.cooling_power_w == 30_000.0 and site.site.cooling_source == pb.VALUE_SOURCE_MODELLED
        assert site.site.pue == pytest.approx(with_cooling / site.output_power_w)

        # a power cap what-if on one rack saves power at the GPU and more at the grid
        cap = await stub.WhatIfPowerCap(pb.WhatIfPowerCapRequest(racks=pb.RackIds(rack_ids=["su1-0005"]), cap_w=400))
        assert cap.gpus == 32 and cap.site_power_saved_w > cap.gpu_power_saved_w > 0
        assert cap.mean_sm_clock_after_mhz < cap.mean_sm_clock_before_mhz


async def test_alerts_clear_once_when_their_condition_ends(kafka_bootstrap, fresh_database, facility_file,
                                                          unique_topic):
    """A full-load tick raises alerts (PDUs and UPSs above 80 % of their rating, the UPS bus without a spare,
    rack 3's PDU disagreeing with the model); an idle tick after it ends every one of them: each entity and
    kind gets exactly one clear (``cleared``, same scope, kind and a severity it was raised with)."""
    from twin.power.domain.alerts import power_alerts

    cfg = config(kafka_bootstrap, fresh_database, facility_file, unique_topic, f"power-it-{uuid.uuid4().hex[:8]}")
    await ensure(cfg, kafka_bootstrap)
    busy = Load(facility_file, t=time.time())
    idle = Load(facility_file, t=busy.t + 1)
    for a in (idle.tensor, idle.sm, idle.dram):
        a[:] = 0.0
    idle.measured_gpu[:] = np.nan
    idle.pdu[:] = np.nan                         # no PDU readings: nothing for a sensor to disagree with
    m = idle.model
    idle.tick = site_tick(m.gpu, m.layout, m.network, tensor_active=idle.tensor, sm_active=idle.sm,
                          dram_active=idle.dram)
    net = m.network
    raised_by_domain = {(a.entity_id, a.kind) for a in power_alerts(net, busy.tick.chain)}
    assert {("ups-1", "over_threshold"), ("pdu-3", "over_threshold")} <= raised_by_domain   # what the test relies on
    assert power_alerts(net, idle.tick.chain) == []                                          # idle: nothing in force
    expected = raised_by_domain | {("su1-0003", "suspect_sensor")}

    def alerts(recs) -> list[pb.PowerAlert]:
        return [pb.PowerAlert.FromString(r.value) for r in recs]

    def key(a: pb.PowerAlert) -> tuple[str, str]:
        return a.entity_id, pb.AlertKind.Name(a.kind).removeprefix("ALERT_KIND_").lower()

    async with Running(PowerApp(cfg)):
        await send_load(kafka_bootstrap, cfg, busy)
        await read_until(kafka_bootstrap, cfg.alerts_topic,
                         lambda rs: {key(a) for a in alerts(rs) if not a.cleared} >= expected)
        await send_load(kafka_bootstrap, cfg, idle)
        await read_until(kafka_bootstrap, cfg.state_topic, lambda rs: any(
            s.scope == pb.POWER_SCOPE_SITE and s.input_power_w == pytest.approx(idle.tick.chain.site_w, rel=1e-9)
            for s in states(rs)))
        recs = await read_until(kafka_bootstrap, cfg.alerts_topic,
                                lambda rs: {key(a) for a in alerts(rs) if a.cleared} >= expected)
        await asyncio.sleep(1.0)                 # anything sent twice would be there by now
        got = alerts(await read_to_end(kafka_bootstrap, cfg.alerts_topic))
    raised = [a for a in got if not a.cleared]
    cleared = [a for a in got if a.cleared]
    assert {key(a) for a in raised} == {key(a) for a in cleared} == expected
    assert sorted(key(a) for a in cleared) == sorted(expected)                  # one clear each, none twice
    by_key = {}
    for a in raised:
        by_key.setdefault(key(a), set()).add((a.scope, a.severity))
    for c in cleared:
        assert (c.scope, c.severity) in by_key[key(c)], c
        assert c.alert_time.ToNanoseconds() == int(idle.t * 1e9) and c.message.endswith(" cleared")
    assert len({a.alert_id for a in got}) == len(got)
    assert [r.key.decode() for r in recs if pb.PowerAlert.FromString(r.value).cleared] == [
        c.entity_id for c in alerts(recs) if c.cleared]                      # keyed by entity, like the alert


def _ts(t: float):
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromNanoseconds(int(t * 1e9))
    return ts


def openadr_event(event_id: str, limit_kw: float, start_s: float, duration: str = "PT10M") -> dict:
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_s))
    return {"id": event_id, "objectType": "EVENT", "programID": "ercot-ers-10", "eventName": "shed",
            "intervalPeriod": {"start": start, "duration": duration},
            "payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}],
            "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [limit_kw]}]}]}


async def test_openadr_event_over_http_gives_a_plan_and_a_bad_event_goes_to_the_dlq(
        kafka_bootstrap, fresh_database, facility_file, unique_topic):
    cfg = config(kafka_bootstrap, fresh_database, facility_file, unique_topic, f"power-it-{uuid.uuid4().hex[:8]}")
    await ensure(cfg, kafka_bootstrap)
    load = Load(facility_file, t=time.time())
    site_w = load.tick.chain.site_w
    async with Running(PowerApp(cfg)) as app, aiohttp.ClientSession() as http:
        await send_load(kafka_bootstrap, cfg, load)
        await read_until(kafka_bootstrap, cfg.state_topic, lambda rs: any(
            s.scope == pb.POWER_SCOPE_SITE and s.input_power_w == pytest.approx(site_w, rel=1e-9) for s in states(rs)))
        url = f"http://127.0.0.1:{app.http_port}/openadr3/events"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        limit_kw = round(0.8 * site_w / 1e3, 3)
        event = openadr_event("evt-it-1", limit_kw, time.time() + 120)

        async with http.post(url, json=event) as resp:          # no token: refused, nothing published
            assert resp.status == 401
        async with http.post(url, json=event, headers=auth) as resp:
            assert resp.status == 202, await resp.text()
            assert (await resp.json())["event_id"] == "evt-it-1"

        grid = await read_until(kafka_bootstrap, cfg.grid_topic, lambda rs: len(rs) >= 1)
        assert grid[0].key == b"evt-it-1"
        assert pb.GridEvent.FromString(grid[0].value).intervals[0].import_limit_kw == pytest.approx(limit_kw)
        plans = await read_until(kafka_bootstrap, cfg.plans_topic, lambda rs: len(rs) >= 1)
        plan = pb.CurtailmentPlan.FromString(plans[0].value)
        assert plans[0].key == SITE.encode() and plan.event_id == "evt-it-1"
        assert plan.limit_w == pytest.approx(limit_kw * 1e3)
        assert plan.baseline_site_power_w == pytest.approx(site_w, rel=1e-9)
        assert 100 < plan.deadline_offset_s <= 120 and plan.duration_s == pytest.approx(600, abs=1)
        assert plan.meets_limit and plan.shortfall_w == pytest.approx(0, abs=1e-3) and not plan.sources
        assert plan.capped_gpu_ids and min(plan.cap_w) >= 200.0          # H100 minimum cap
        assert plan.timeline_site_import_w[-1] <= plan.limit_w * (1 + 1e-6)

        # a bad event: 400 naming the field, and the raw body in grid.events.v1.dlq with the reason
        bad = openadr_event("evt-it-bad", 1000, time.time() + 120)
        bad["intervals"][0]["payloads"][0]["values"] = [-5]
        async with http.post(url, json=bad, headers=auth) as resp:
            assert resp.status == 400
            body = await resp.json()
        assert body["field"] == "intervals[0].payloads[0].values[0]"
        dead = await read_until(kafka_bootstrap, cfg.grid_topic, lambda rs: len(rs) >= 1, dlq=True)
        headers = dict(dead[0].headers)
        assert headers["dlq_reason"].decode().startswith("intervals[0].payloads[0].values[0]: ")
        assert b"evt-it-bad" in dead[0].value
        # and nothing else reached grid.events.v1 (the receiver publishes before it answers)
        assert [r.key for r in await read_to_end(kafka_bootstrap, cfg.grid_topic)] == [b"evt-it-1"]

    # a restarted process knows the event in force (the book is rebuilt from grid.events.v1)
    async with Running(PowerApp(cfg)) as again:
        assert [e.event_id for e in again.grid_book.events] == ["evt-it-1"]
        assert again.grid_book.events[0].intervals[0].import_limit_kw == pytest.approx(limit_kw)
