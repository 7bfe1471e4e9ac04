"""The live stages (twin.power.live) and the codec, without a broker: measured values win, the model fills
the rest and says so, stage 2 never moves backwards, the total does not depend on how racks are split,
and protobuf round trips."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from twin.core.facility import load_facility_spec
from twin.power.adapters import codec
from twin.power.adapters.codec import CodecError, SiteIndex
from twin.power.domain import GridEvent, GridInterval, evaluate, site_tick
from twin.power.live import MEASURED, MIXED, MODELLED, RackReading, RackStage, RackUpdate, SiteStage
from twin.power.site import build_site_model
from twin.power.v1 import power_pb2 as pb
from twin.telemetry.v1 import telemetry_pb2 as tpb


@pytest.fixture(scope="module")
def su():
    return build_site_model(load_facility_spec("dgx-h100-su"))


def reading(stage: RackStage, rack: int, *, t: float = 1.0, tensor: float = 0.9, gpu_w: float | None = None,
            missing: int = 0, pdu_w: float = np.nan) -> RackReading:
    g = np.arange(stage.rack_first_gpu[rack], stage.rack_first_gpu[rack] + stage.rack_n_gpus[rack])[missing:]
    n = len(g)
    power = np.full(n, np.nan if gpu_w is None else gpu_w)
    return RackReading(site_id="su-h100", rack=rack, time_s=t, gpu=g, power_w=power, tensor_active=np.full(n, tensor),
                       sm_active=np.full(n, min(tensor + 0.05, 1.0)), dram_active=np.full(n, 0.3), pdu_w=pdu_w)


def test_measured_wins_and_the_model_fills_the_rest(su):
    stage = RackStage(su)
    modelled, measured_gpus, measured_pdu = stage.apply([reading(stage, 0), reading(stage, 1, gpu_w=500.0),
                                                         reading(stage, 2, pdu_w=33_000.0)])
    assert (modelled.source, modelled.modelled_gpus, modelled.measured_gpus) == (MODELLED, 32, 0)
    assert (measured_gpus.source, measured_gpus.measured_gpus) == (MIXED, 32)
    assert measured_gpus.gpu_w == pytest.approx(32 * 500.0)
    assert (measured_pdu.source, measured_pdu.input_w) == (MEASURED, 33_000.0)
    assert measured_pdu.modelled_input_w == pytest.approx(modelled.modelled_input_w)
    # the same numbers as one site tick of the domain
    n = len(su.layout.gpu_node)
    tensor = np.zeros(n)
    tensor[:96] = 0.9
    meas = np.full(n, np.nan)
    meas[32:64] = 500.0
    tick = site_tick(su.gpu, su.layout, su.network, tensor_active=tensor, sm_active=np.where(tensor > 0, 0.95, 0.0),
                     dram_active=np.where(tensor > 0, 0.3, 0.0), measured_gpu_w=meas)
    assert [modelled.input_w, measured_gpus.input_w] == pytest.approx(tick.rack_w[:2], rel=1e-12)


def test_a_gpu_missing_from_a_batch_keeps_its_last_activity(su):
    stage = RackStage(su)
    full = stage.apply([reading(stage, 0, tensor=1.0)])[0]
    partial = stage.apply([reading(stage, 0, t=2.0, tensor=1.0, missing=8)])[0]
    assert partial.input_w == pytest.approx(full.input_w)
    assert RackStage(su).apply([reading(RackStage(su), 0, t=2.0, tensor=1.0, missing=8)])[0].input_w < full.input_w


def test_suspect_sensor_beyond_tolerance(su):
    stage = RackStage(su, sensor_tolerance=0.15)
    model = stage.apply([reading(stage, 0)])[0].modelled_input_w
    ok, bad = stage.apply([reading(stage, 0, t=2, pdu_w=model * 1.1), reading(stage, 1, t=2, pdu_w=model * 1.3)])
    assert (ok.suspect, bad.suspect) == (False, True)
    # no CPU load in telemetry: anything between the idle-CPU and busy-CPU model (± tolerance) is plausible
    low = ok.modelled_min_input_w
    assert low < 0.8 * model
    fine, too_low = stage.apply([reading(stage, 0, t=3, pdu_w=low * 0.9), reading(stage, 1, t=3, pdu_w=low * 0.8)])
    assert (fine.suspect, too_low.suspect) == (False, True)


def test_stage2_is_order_and_split_independent_and_never_goes_back(su):
    rng = np.random.default_rng(1)
    ups = [RackUpdate(r, 10.0, float(w), MEASURED) for r, w in enumerate(rng.uniform(20e3, 40e3, su.network.n_racks))]
    one = SiteStage(su).apply(ups)
    split = SiteStage(su)
    split.apply(ups[5:])
    two = split.apply(list(reversed(ups[:5])))
    assert two.chain.site_w == pytest.approx(one.chain.site_w, rel=1e-12)
    assert one.chain.site_w == pytest.approx(evaluate(su.network, np.array([u.input_w for u in ups])).site_w)
    assert one.site_source == MEASURED
    assert split.apply([RackUpdate(0, 9.0, 1.0, MEASURED)]) is None        # older: ignored
    assert split.apply(ups) is None                                          # a replay: nothing new


def test_racks_never_heard_from_count_at_idle(su):
    stage = SiteStage(su)
    res = stage.apply([RackUpdate(0, 1.0, 30e3, MEASURED)])
    assert res.reported_racks == 1 and res.site_source == MIXED
    assert res.rack_w[1:] == pytest.approx(stage.idle_rack_w[1:])


def test_restore_is_evaluated_even_without_newer_updates(su):
    stage = SiteStage(su)
    ups = [RackUpdate(r, 5.0, 25e3, MEASURED) for r in range(su.network.n_racks)]
    assert stage.restore(ups) == su.network.n_racks
    assert stage.apply(ups) is not None
    assert stage.apply(ups) is None


def test_telemetry_batch_decoding_names_the_field(su):
    index = SiteIndex.of(su.inventory)
    b = tpb.RackTelemetryBatch(site_id="su-h100", rack_id="su1-0001")
    b.sample_time.FromSeconds(100)
    node = b.nodes.add(node_id="su1-0001-n00")
    node.gpus.gpu_index.extend([0, 1])
    node.gpus.tensor_active.extend([0.5, 0.6])
    r = codec.rack_reading(tpb.TelemetrySamples(batch=b), index)
    assert r.rack == 1 and r.gpu.tolist() == [32, 33] and np.isnan(r.power_w).all() and np.isnan(r.pdu_w)
    node.gpus.power_w.extend([1.0])
    with pytest.raises(CodecError, match=r"^batch.nodes\[0\].gpus.power_w: 1 values for 2 GPUs"):
        codec.rack_reading(tpb.TelemetrySamples(batch=b), index)
    b.nodes[0].node_id = "su1-0002-n00"
    with pytest.raises(CodecError, match=r"^batch.nodes\[0\].node_id"):
        codec.rack_reading(tpb.TelemetrySamples(batch=b), index)
    b.rack_id = "nope"
    with pytest.raises(CodecError, match=r"^batch.rack_id"):
        codec.rack_reading(tpb.TelemetrySamples(batch=b), index)


def test_site_and_component_states_close_energy(su):
    ups = [RackUpdate(r, 10.0, 30e3, MEASURED) for r in range(su.network.n_racks)]
    res = SiteStage(su).apply(ups)
    site = codec.site_state(su.network, res)
    comps = codec.component_states(su.network, res)
    assert site.scope == pb.POWER_SCOPE_SITE and site.output_power_w == pytest.approx(8 * 30e3)
    assert site.input_power_w == pytest.approx(res.chain.site_w) and site.site.pue > 1
    for s in comps:
        assert s.input_power_w == pytest.approx(s.output_power_w + s.loss_w) and s.loss_w >= 0
    assert {pb.PowerScope.Name(s.scope) for s in comps} == {
        "POWER_SCOPE_PDU", "POWER_SCOPE_UPS_GROUP", "POWER_SCOPE_UPS", "POWER_SCOPE_TRANSFORMER", "POWER_SCOPE_FEED"}
    update = codec.rack_update(codec.rack_state(RackStage(su).apply([reading(RackStage(su), 3)])[0]),
                               su.inventory.rack_index)
    assert update.rack == 3 and update.source == MODELLED


def test_grid_event_round_trip():
    start = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
    ev = GridEvent("evt-1", "prog", "shed", (GridInterval(0, start, 1800.0, import_limit_kw=80_000.0),
                                             GridInterval(1, start, float("inf"), simple_level=2)))
    back = codec.grid_event(codec.grid_event_to_proto(ev))
    assert back.event_id == "evt-1" and back.intervals[0] == ev.intervals[0]
    assert back.intervals[1].duration_s == float("inf") and back.intervals[1].simple_level == 2
    bad = codec.grid_event_to_proto(ev)
    bad.intervals[0].import_limit_kw = -1
    with pytest.raises(CodecError, match=r"^intervals\[0\].import_limit_kw"):
        codec.grid_event(bad)


async def test_grid_handler_plans_only_the_limit_in_force():
    from twin.power.adapters.stream import GridHandler, StreamStats

    now = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)
    asked = []

    def plan(**kw):
        asked.append(kw)
        return kw

    def encode(p, **kw):
        return pb.CurtailmentPlan(event_id=kw["event_id"], limit_w=p["limit_w"], deadline_offset_s=p["deadline_s"],
                                  duration_s=p["duration_s"])

    h = GridHandler("su-h100", plan, encode, producer=None, plans_topic=None, stats=StreamStats(), now=lambda: now)
    start = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
    first = GridEvent("a", "p", "", (GridInterval(0, start, 3600.0, import_limit_kw=900.0),))
    later = GridEvent("b", "p", "", (GridInterval(0, start, 1800.0, import_limit_kw=700.0),))
    h.book.apply(first, cancelled=False)
    plans = await h.plans_for(first)
    assert [(p.event_id, p.limit_w, p.deadline_offset_s, p.duration_s) for p in plans] == [("a", 900e3, 3600.0, 3600.0)]
    h.book.apply(later, cancelled=False)
    assert [p.event_id for p in await h.plans_for(later)] == ["b"]
    assert await h.plans_for(first) == []            # overlapped by the later event: "b" is in force
    h.book.apply(later, cancelled=True)
    assert [p.event_id for p in await h.plans_for(first)] == ["a"]
    past = GridEvent("c", "p", "", (GridInterval(0, datetime(2026, 11, 29, 11, 0, tzinfo=UTC), 600.0,
                                                 import_limit_kw=1.0),))
    h.book.apply(past, cancelled=False)
    assert await h.plans_for(past) == []             # already over


def test_read_model_jobs_and_cooling(su):
    from twin.cooling.v1 import cooling_pb2 as cpb
    from twin.jobs.v1 import jobs_pb2 as jpb
    from twin.power.adapters.views import ReadModel

    view = ReadModel(SiteIndex.of(su.inventory), len(su.layout.gpu_node))

    def job(jid, t, status=jpb.JOB_STATUS_RUNNING, **placement):
        msg = jpb.JobState(job_id=jid, status=status, spec=jpb.JobSpec(priority=-3, checkpoint_interval_s=600,
                                                                         checkpoint_write_s=30),
                           placement=jpb.Placement(**placement))
        msg.state_time.FromSeconds(t)
        return msg

    view.apply_job(job("a", 10, node_ids=["su1-0000-n01"]))
    view.apply_job(job("b", 10, gpu_ids=[0, 1, 2]))
    view.apply_job(job("c", 10, gpu_ids=[99_999]))                # no such GPU: skipped
    assert view.jobs["a"].gpus.tolist() == list(range(8, 16)) and view.jobs["a"].priority == 0
    assert "c" not in view.jobs and view.skipped == 1
    jobs, per_gpu = view.planner_jobs()
    assert jobs.job_ids == ("a", "b") and per_gpu[8] == 0 and per_gpu[2] == 1 and per_gpu[20] == -1
    assert jobs.seconds_since_checkpoint.tolist() == [300.0, 300.0] and jobs.checkpoint_s.tolist() == [30.0, 30.0]
    view.apply_job(job("b", 5, status=jpb.JOB_STATUS_FINISHED))   # older than what we hold: ignored
    view.apply_job(job("a", 11, status=jpb.JOB_STATUS_FINISHED))
    assert set(view.jobs) == {"b"}

    def plant(w, t, site="su-h100"):
        msg = cpb.CoolingState(site_id=site, entity_id=site, scope=cpb.COOLING_SCOPE_PLANT,
                               source=cpb.VALUE_SOURCE_MEASURED, plant=cpb.PlantDetail(cooling_power_w=w))
        msg.state_time.FromSeconds(t)
        return msg

    view.apply_cooling(plant(20e3, 10))
    view.apply_cooling(plant(10e3, 9))                              # older
    view.apply_cooling(plant(99e3, 11, site="elsewhere"))           # another site
    assert (view.cooling_w, view.cooling_source) == (20e3, MEASURED)
    stage = SiteStage(su)
    stage.apply([RackUpdate(r, 1.0, 30e3, MEASURED) for r in range(su.network.n_racks)])
    stage.set_cooling(view.cooling_w, view.cooling_source)
    res = stage.apply([])
    assert res.chain.site_w == pytest.approx(evaluate(su.network, np.full(8, 30e3), site_extra_w=20e3).site_w)
    assert codec.site_state(su.network, res).site.cooling_power_w == 20e3


async def test_equipment_batches_are_left_to_the_cooling_twin(su):
    """A telemetry.samples.v1 record carrying CDU/CRAH/plant readings (no rack) is neither a rack power
    reading nor a reject: the power twin skips it instead of dead-lettering it."""
    from types import SimpleNamespace

    from twin.power.adapters.stream import RackHandler, StreamStats

    class Store:
        async def write(self, states):
            return len(states)

    msg = tpb.TelemetrySamples(batch=tpb.RackTelemetryBatch(site_id="su-h100"))
    msg.batch.equipment.SetInParent()
    stage = RackStage(su)
    handler = RackHandler(SiteIndex.of(su.inventory), stage, producer=None, store=Store(), state_topic=None, racks_topic=None,
                          alerts_topic=None, stats=StreamStats())
    result = await handler([SimpleNamespace(message=msg)])
    assert result.rejected == []
