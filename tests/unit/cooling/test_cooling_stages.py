"""The cooling twin's two stages without a broker: calibrating in a stage-1 live twin and handing the result to
the site's stage-2 twin through cooling.racks.v1's codec gives bit for bit the parameters and the tick of one
live twin doing both; stage 1 forwards keyed by site and dead-letters what it cannot take; stage 2 rejects
records it cannot take with the field named, and evaluates a tick once every rack's heat is in."""

from __future__ import annotations

import asyncio
import math
from dataclasses import fields

import numpy as np
import pytest
from test_cooling_alert_clear import Producer as RecordingProducer  # same directory (rootdir-relative import)

from twin.cooling.adapters import codec
from twin.cooling.adapters.codec import CodecError
from twin.cooling.adapters.repository import InMemoryCoolingStore
from twin.cooling.adapters.stream import (
    CoolingPipeline,
    EventHandler,
    PowerHandler,
    RackStage,
    SiteHandler,
    TelemetryHandler,
)
from twin.cooling.domain.thermal import split_power, steady_temperatures
from twin.cooling.live import CoolingLive, GpuReading, RackGpus
from twin.cooling.site import build_cooling_site
from twin.cooling.v1 import cooling_pb2 as pb
from twin.core import topics
from twin.core.facility import load_facility_spec
from twin.power.v1 import power_pb2 as ppb
from twin.telemetry.v1 import telemetry_pb2 as tpb

SITE = "hall-gb200"


@pytest.fixture(scope="module")
def hall():
    return build_cooling_site(load_facility_spec("gb200-nvl72-hall"))


class Producer(RecordingProducer):
    def on(self, topic: topics.Topic) -> list:
        return [m for t, _, m in self.sent if t == topic.name]


class Rec:
    """What the handlers read of a kit Record."""

    def __init__(self, message, key: str | None = None) -> None:
        self.message, self.key, self.headers = message, key, []


def _readings(hall, k: int, racks=(0, 3)) -> list[GpuReading]:
    """Racks 0 and 3 at sample k: GPUs 30 % above the spec's resistance, power alternating every 40 samples;
    rack 3 reports only half its GPUs' power (the rest filled from its IT power)."""
    out = []
    g = hall.gpus
    rng = np.random.default_rng(k)
    for r in racks:
        idx = np.flatnonzero(g.gpu_rack == r)
        truth = hall.gpu.take(idx)
        truth = type(truth)(**{f.name: getattr(truth, f.name) * (1.3 if f.name.startswith("r_") else 1.0)
                               for f in fields(truth)})
        power = np.full(len(idx), 700.0 if (k // 40) % 2 else 1100.0)
        core, hbm = split_power(power, np.full(len(idx), 0.3), g.hbm_peak_TBps[idx])
        gpu_t, hbm_t = steady_temperatures(truth, core, hbm, np.full(len(idx), 30.0))
        measured = power.copy()
        if r == 3:
            measured[::2] = np.nan
        out.append(GpuReading(rack=r, time_s=float(k), gpu=idx, power_w=measured,
                              gpu_temp_c=gpu_t + rng.normal(0, 0.2, len(idx)), hbm_temp_c=hbm_t,
                              dram_active=np.full(len(idx), 0.3)))
    return out


def test_stage_one_calibration_through_the_codec_equals_one_live_twin(hall):
    net = hall.network
    one = CoolingLive(hall, min_calibration_samples=5)
    s1, s2 = CoolingLive(hall, min_calibration_samples=5), CoolingLive(hall, min_calibration_samples=5)
    heat = [(r, 0.0, 100e3 + 1e3 * r) for r in range(net.n_racks)]
    one.apply_power(heat)
    s2.apply_power(heat)
    one.evaluate(0.0)
    s2.evaluate(0.0)
    sent = 0
    for k in range(1, 60):
        readings = _readings(hall, k)
        one.apply_telemetry(readings)
        s1.set_rack_view(s2.current_rack_it_w(), s2.last.tick.state.rack_coolant_c)
        fitted: list[RackGpus] = []
        s1.apply_telemetry(readings, fitted)
        assert len(fitted) == len(readings)
        wire = [pb.CoolingStageInput.FromString(codec.gpus_input(SITE, net.rack_ids, f).SerializeToString())
                for f in fitted]
        sent += sum(len(m.gpus.calibrated_gpu_ids) for m in wire)
        s2.apply_rack_gpus([codec.rack_gpus(m.gpus, hall.inventory.rack_index, hall.gpus.gpu_rack) for m in wire])
        if k % 10 == 0:
            a, b = one.evaluate(float(k)), s2.evaluate(float(k))
            np.testing.assert_array_equal(a.tick.rack_max_gpu_c, b.tick.rack_max_gpu_c)
            np.testing.assert_array_equal(a.tick.forecast.gpu_time_s, b.tick.forecast.gpu_time_s)
    assert sent > 0 and one.calibrated_gpus.sum() == s2.calibrated_gpus.sum() == 2 * 72
    for f in fields(one.params):
        np.testing.assert_array_equal(getattr(one.params, f.name), getattr(s2.params, f.name))
    np.testing.assert_array_equal(one.board_w, s2.board_w)
    np.testing.assert_array_equal(one.mem_act, s2.mem_act)
    # stage 2 never calibrated: it only took what stage 1 fitted
    assert not s2.cal and set(s1.cal) == {0, 3}


def test_rack_gpus_codec_names_the_field_it_cannot_take(hall):
    idx = np.flatnonzero(hall.gpus.gpu_rack == 1)
    r = GpuReading(rack=1, time_s=5.0, gpu=idx, power_w=np.full(len(idx), 800.0),
                   gpu_temp_c=np.full(len(idx), np.nan), hbm_temp_c=np.full(len(idx), np.nan),
                   dram_active=np.full(len(idx), 0.2))
    params = hall.gpu.take(idx[:3])
    good = codec.gpus_input(SITE, hall.network.rack_ids, RackGpus(r, idx[:3], params)).gpus
    back = codec.rack_gpus(good, hall.inventory.rack_index, hall.gpus.gpu_rack)
    assert back.reading.rack == 1 and back.gpus.tolist() == idx[:3].tolist()
    assert back.params.r_slow_k_per_w.tolist() == params.r_slow_k_per_w.tolist()
    assert math.isnan(back.reading.coolant_flow_lpm)
    def variant(change) -> pb.RackGpus:
        m = pb.RackGpus()
        m.CopyFrom(good)
        change(m)
        return m

    other_rack_gpu = int(np.flatnonzero(hall.gpus.gpu_rack == 2)[0])
    cases = [
        (variant(lambda m: setattr(m, "rack_id", "z-9")), "gpus.rack_id"),
        (variant(lambda m: m.gpu_ids.__setitem__(0, other_rack_gpu)), "gpus.gpu_ids"),
        (variant(lambda m: m.power_w.pop()), "gpus.power_w"),
        (variant(lambda m: m.calibrated.offset_c.__setitem__(1, math.nan)), "gpus.calibrated.offset_c"),
        (variant(lambda m: m.ClearField("sample_time")), "gpus.sample_time"),
        (variant(lambda m: m.calibrated.tau_slow_s.__setitem__(0, 0.0)), "gpus.calibrated.tau_slow_s"),
        (variant(lambda m: m.calibrated.hbm_self_k_per_w.__setitem__(2, -1e-3)), "gpus.calibrated.hbm_self_k_per_w"),
    ]
    for bad, field in cases:
        with pytest.raises(CodecError) as err:
            codec.rack_gpus(bad, hall.inventory.rack_index, hall.gpus.gpu_rack)
        assert err.value.field == field


def _power_state(rack: str, w: float, t: float, site: str = SITE) -> ppb.PowerState:
    m = ppb.PowerState(site_id=site, entity_id=rack, scope=ppb.POWER_SCOPE_RACK, input_power_w=w)
    m.state_time.FromNanoseconds(int(t * 1e9))
    return m


def test_stage_one_forwards_keyed_by_site_and_dead_letters_what_it_cannot_take(hall):
    net = hall.network
    prod, store = Producer(), InMemoryCoolingStore()
    stage = RackStage(CoolingLive(hall), prod, store, topics.COOLING_RACKS)

    async def run():
        got = await PowerHandler(stage)([Rec(_power_state("a-0001", 90e3, 10.0)), Rec(_power_state("x-1", 1.0, 10.0)),
                                         Rec(_power_state("a-0002", 1.0, 10.0, site="elsewhere"))])
        assert sorted(r.reason.split(":")[1].strip() for r in got.rejected) == ["entity_id", "site_id"]
        b = tpb.RackTelemetryBatch(site_id=SITE, rack_id="b-0002")
        b.sample_time.FromNanoseconds(int(10e9))
        node = hall.inventory.node_ids(hall.inventory.racks[hall.inventory.rack_index["b-0002"]])[0]
        gs = b.nodes.add(node_id=node).gpus
        gs.gpu_index.extend([0, 1])
        gs.power_w.extend([900.0, 950.0])
        eq = tpb.RackTelemetryBatch(site_id=SITE)
        eq.sample_time.FromNanoseconds(int(10e9))
        eq.equipment.cdus.add(cdu_id="cdu-a-1", heat_removed_w=1e5)
        bad_eq = tpb.RackTelemetryBatch(site_id=SITE)
        bad_eq.sample_time.FromNanoseconds(int(10e9))
        bad_eq.equipment.cdus.add(cdu_id="cdu-q-7")
        got = await TelemetryHandler(stage)([Rec(tpb.TelemetrySamples(batch=b)), Rec(tpb.TelemetrySamples(batch=eq)),
                                             Rec(tpb.TelemetrySamples(batch=bad_eq))])
        assert [r.reason for r in got.rejected] == ["validation: batch.equipment.cdus[0].cdu_id: unknown CDU 'cdu-q-7'"]
        ev = pb.CoolingEvent(site_id=SITE, entity_id="cdu-a-1", kind=pb.COOLING_EVENT_KIND_CDU_FAILURE)
        ev.event_time.FromNanoseconds(int(20e9))
        old = pb.CoolingEvent(site_id=SITE, entity_id="cdu-a-1", kind=pb.COOLING_EVENT_KIND_CDU_REPAIR)
        old.event_time.FromNanoseconds(int(15e9))
        got = await EventHandler(stage, now=lambda: 30.0)([Rec(ev), Rec(old)])
        assert len(got.rejected) == 1 and "event_time: older than" in got.rejected[0].reason

    asyncio.run(run())
    out = prod.on(topics.COOLING_RACKS)
    assert {k for t, k, _ in prod.sent} == {SITE} and all(m.site_id == SITE for m in out)
    assert [m.WhichOneof("input") for m in out] == ["heat", "equipment", "gpus", "event"]
    assert out[0].heat.rack_id == "a-0001" and out[0].heat.it_power_w == 90e3
    assert list(out[2].gpus.power_w) == [900.0, 950.0] and out[2].gpus.rack_id == "b-0002"
    assert out[3].event.entity_id == "cdu-a-1"
    assert not prod.on(topics.COOLING_STATE)  # stage 1 publishes no state of its own
    assert net.n_racks == 16


def test_stage_two_evaluates_a_complete_tick_and_names_what_it_rejects(hall):
    net = hall.network
    prod, store = Producer(), InMemoryCoolingStore()
    live = CoolingLive(hall)
    pipe = CoolingPipeline(live, prod, store, topics.COOLING_STATE, topics.COOLING_ALERTS)
    handler = SiteHandler(pipe)

    def heat(rack: str, w: float, t: float, site: str = SITE) -> Rec:
        return Rec(codec.heat_input(site, rack, t, w), key=site)

    async def run():
        half = [heat(r, 100e3, 5.0) for r in net.rack_ids[:8]]
        got = await handler(half + [heat("nope", 1.0, 5.0), heat("a-0001", math.inf, 5.0),
                                    heat("a-0001", 1.0, 5.0, site="other"), Rec(pb.CoolingStageInput(site_id=SITE))])
        fields_ = sorted(r.reason.split(":")[1].strip() for r in got.rejected)
        assert fields_ == ["heat.it_power_w", "heat.rack_id", "input", "site_id"]
        assert not prod.on(topics.COOLING_STATE)  # half the racks: the tick is not complete
        await handler([heat(r, 100e3, 5.0) for r in net.rack_ids[8:]])
        plant = [s for s in prod.on(topics.COOLING_STATE) if s.scope == pb.COOLING_SCOPE_PLANT]
        assert len(plant) == 1 and plant[0].plant.it_power_w == pytest.approx(16 * 100e3)
        ev = pb.CoolingEvent(site_id=SITE, entity_id="cdu-a-1", kind=pb.COOLING_EVENT_KIND_CDU_FAILURE)
        ev.event_time.FromNanoseconds(int(6e9))
        old = pb.CoolingEvent(site_id=SITE, entity_id="cdu-a-1", kind=pb.COOLING_EVENT_KIND_CDU_REPAIR)
        old.event_time.FromNanoseconds(int(5.5e9))
        got = await handler([Rec(pb.CoolingStageInput(site_id=SITE, event=ev)),
                             Rec(pb.CoolingStageInput(site_id=SITE, event=old))])
        assert len(got.rejected) == 1 and "event_time" in got.rejected[0].reason
        assert not live.cond.cdu_up[net.cdu_ids.index("cdu-a-1")]
        assert store.conditions[SITE][2]["cdu-a-1"] == 6.0  # saved before the batch is committed
        cdu = [s for s in prod.on(topics.COOLING_STATE) if s.entity_id == "cdu-a-1"]
        assert [s.cdu.up for s in cdu] == [True, False]

    asyncio.run(run())
    assert pipe.stats.evaluations == 2 and pipe.stats.events_applied == 1


def test_a_process_not_holding_the_site_reads_stored_heat_and_conditions_before_a_what_if(hall):
    """The owner stored its racks and a failed CDU; another process (its stage 2 idle) refreshes before answering."""
    net = hall.network
    store = InMemoryCoolingStore()
    owner = CoolingPipeline(CoolingLive(hall), Producer(), store, topics.COOLING_STATE, topics.COOLING_ALERTS)
    clock = [100.0]
    other = CoolingPipeline(CoolingLive(hall), Producer(), store, topics.COOLING_STATE, topics.COOLING_ALERTS)
    idle = SiteHandler(other, restore_after_s=30.0, monotonic=lambda: clock[0])

    async def run():
        await SiteHandler(owner)([Rec(codec.heat_input(SITE, r, 5.0, 90e3)) for r in net.rack_ids])
        ev = pb.CoolingEvent(site_id=SITE, entity_id="cdu-b-2", kind=pb.COOLING_EVENT_KIND_CDU_FAILURE)
        ev.event_time.FromNanoseconds(int(6e9))
        await SiteHandler(owner)([Rec(pb.CoolingStageInput(site_id=SITE, event=ev))])
        idle.restored()                      # started (and restored) before the owner wrote anything
        clock[0] += 10.0
        await idle.refresh_if_idle()         # within restore_after_s of its last read: nothing re-read
        assert other.live.current_rack_it_w().sum() == 0
        clock[0] += 30.0
        await idle.refresh_if_idle()
        assert other.live.current_rack_it_w().tolist() == [90e3] * net.n_racks
        assert not other.live.cond.cdu_up[net.cdu_ids.index("cdu-b-2")]

    asyncio.run(run())
