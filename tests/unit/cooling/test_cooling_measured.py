"""Measured beats assumed (issue 10): fresh plant and CDU readings replace the model's ambient, loop supply,
loop flow and plant power; a reading older than ``measured_max_age_s`` expires back to the event's or the
spec's value; each value's source is in the published state; what-ifs keep a measurement only where the
change leaves it alone. PUE at zero IT power is absent, never NaN."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.cooling.adapters import codec
from twin.cooling.adapters.codec import CodecError
from twin.cooling.adapters.inputs import equipment_reading
from twin.cooling.domain.events import EquipmentEvent
from twin.cooling.domain.network import design_conditions, evaluate, keep_measured
from twin.cooling.domain.whatif import what_if
from twin.cooling.live import EVENT, MEASURED, SPEC, CoolingLive, EquipmentReading
from twin.cooling.site import build_cooling_site
from twin.cooling.v1 import cooling_pb2 as pb
from twin.core.facility import load_facility_spec
from twin.telemetry.v1 import telemetry_pb2 as tpb


@pytest.fixture(scope="module")
def hall():
    return build_cooling_site(load_facility_spec("gb200-nvl72-hall"))


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def _reading(net, t: float, **kw) -> EquipmentReading:
    n, m = len(net.cdu_ids), len(net.crah_ids)
    cols = {k: kw.pop(k, _nan(n)) for k in ("cdu_heat_w", "cdu_flow_lpm", "cdu_supply_c", "cdu_return_c", "cdu_dp_kpa")}
    return EquipmentReading(time_s=t, crah_return_air_c=_nan(m), **cols, **kw)


def _plant(states):
    return next(s for s in states if s.scope == pb.COOLING_SCOPE_PLANT)


def test_pue_is_absent_at_zero_it_power_never_nan(hall):
    net = hall.network
    st = evaluate(net, np.zeros(net.n_racks), design_conditions(net))
    assert st.it_power_w == 0 and st.pue_cooling_part is None
    p = _plant(codec.states(net, st, design_conditions(net), time_s=1.0)).plant
    assert not p.HasField("pue_cooling")
    back = pb.PlantDetail.FromString(p.SerializeToString())
    assert not back.HasField("pue_cooling")
    busy = evaluate(net, np.full(net.n_racks, 100e3), design_conditions(net))
    p = _plant(codec.states(net, busy, design_conditions(net), time_s=1.0)).plant
    assert p.HasField("pue_cooling") and math.isfinite(p.pue_cooling) and p.pue_cooling > 1.0


def test_measured_ambient_replaces_the_spec_and_expires(hall):
    net = hall.network
    live = CoolingLive(hall, measured_max_age_s=300.0)
    live.apply_power([(r, 0.0, 110e3) for r in range(net.n_racks)])
    ev = live.evaluate(0.0)
    assert ev.cond.dry_bulb_c == net.design_dry_bulb_c and ev.sources.dry_bulb == SPEC
    cool_db, cool_wb = net.design_dry_bulb_c - 15.0, net.design_wet_bulb_c - 10.0
    live.apply_equipment([_reading(net, 10.0, dry_bulb_c=cool_db, wet_bulb_c=cool_wb, tower_power_w=math.nan)])
    ev = live.evaluate(20.0)
    assert (ev.cond.dry_bulb_c, ev.cond.wet_bulb_c) == (cool_db, cool_wb)
    assert ev.sources.dry_bulb == MEASURED == ev.sources.wet_bulb
    # the model runs on it: a cooler ambient never costs more plant power than the design ambient
    design = evaluate(net, live.current_rack_it_w(), live.cond)
    assert ev.tick.state.plant_power_w <= design.plant_power_w
    p = _plant(codec.states(net, ev.tick.state, ev.cond, time_s=20.0, sources=ev.sources))
    assert p.plant.dry_bulb_temp_c == cool_db and p.plant.dry_bulb_source == pb.CONDITION_SOURCE_MEASURED
    assert p.source == pb.VALUE_SOURCE_MIXED
    # an ambient event in between: the fresh measurement still wins; once it expires, the event's value
    live.apply_event(EquipmentEvent("ambient_change", net.site_id, 30.0, dry_bulb_temp_c=40.0, wet_bulb_temp_c=26.0))
    assert live.evaluate(40.0).cond.dry_bulb_c == cool_db
    ev = live.evaluate(10.0 + 300.0 + 1.0)
    assert ev.cond.dry_bulb_c == 40.0 and ev.sources.dry_bulb == EVENT
    p = _plant(codec.states(net, ev.tick.state, ev.cond, time_s=311.0, sources=ev.sources))
    assert p.plant.dry_bulb_source == pb.CONDITION_SOURCE_EVENT and p.source == pb.VALUE_SOURCE_MODELLED


def test_measured_cdu_supply_and_flow_drive_the_loop_and_expire(hall):
    net = hall.network
    live = CoolingLive(hall, measured_max_age_s=120.0)
    live.apply_power([(r, 0.0, 110e3) for r in range(net.n_racks)])
    model = live.evaluate(0.0).tick.state
    loop = 0
    cdus = np.flatnonzero(net.cdu_loop == loop)
    n = len(net.cdu_ids)
    supply, flow = _nan(n), _nan(n)
    supply[cdus] = model.loop_supply_c[loop] + 3.0
    flow[cdus] = model.loop_flow_lpm[loop] * 0.8 / len(cdus)
    live.apply_equipment([_reading(net, 5.0, cdu_supply_c=supply, cdu_flow_lpm=flow)])
    ev = live.evaluate(10.0)
    st = ev.tick.state
    assert st.loop_supply_c[loop] == pytest.approx(model.loop_supply_c[loop] + 3.0)
    assert st.loop_flow_lpm[loop] == pytest.approx(model.loop_flow_lpm[loop] * 0.8)
    racks = np.flatnonzero(net.rack_loop == loop)
    # less flow, warmer supply: every rack of the loop runs warmer than the model had it; other loops do not move
    assert (st.rack_return_c[racks] > model.rack_return_c[racks]).all()
    assert (st.rack_coolant_c[racks] > model.rack_coolant_c[racks]).all()
    other = np.flatnonzero(net.rack_loop != loop)
    # (other loops only see the plant's load change by loop 0's pump work: hundredths of a kelvin at most)
    np.testing.assert_allclose(st.rack_coolant_c[other], model.rack_coolant_c[other], atol=0.05)
    assert ev.sources.loop_supply_measured[loop] and ev.sources.loop_flow_measured[loop]
    assert not ev.sources.loop_supply_measured[1:].any()
    states = {s.entity_id: s for s in codec.states(net, st, ev.cond, time_s=10.0, sources=ev.sources)}
    ls = states[net.loop_ids[loop]]
    assert ls.loop.supply_temp_source == pb.VALUE_SOURCE_MEASURED == ls.loop.flow_source
    assert states[net.loop_ids[1]].loop.supply_temp_source == pb.VALUE_SOURCE_MODELLED
    # a partial flow reading (one healthy CDU silent) is not the loop's flow
    flow2 = flow.copy()
    flow2[cdus[0]] = np.nan
    live.apply_equipment([_reading(net, 20.0, cdu_supply_c=supply, cdu_flow_lpm=flow2)])
    ev = live.evaluate(25.0)
    assert ev.sources.loop_supply_measured[loop] and not ev.sources.loop_flow_measured[loop]
    # expired: back to the model
    ev = live.evaluate(20.0 + 121.0)
    assert not ev.sources.loop_supply_measured.any()
    assert ev.tick.state.loop_supply_c[loop] == pytest.approx(model.loop_supply_c[loop])


def test_measured_plant_power_goes_to_the_power_twin(hall):
    net = hall.network
    live = CoolingLive(hall)
    live.apply_power([(r, 0.0, 110e3) for r in range(net.n_racks)])
    model = live.evaluate(0.0).tick.state
    tower = 2.0 * float(model.plant_fan_w.sum()) + 1e3
    live.apply_equipment([_reading(net, 1.0, tower_power_w=tower)])
    ev = live.evaluate(2.0)
    st = ev.tick.state
    assert st.plant_fan_w.sum() == pytest.approx(tower)
    assert st.cooling_power_w == pytest.approx(model.cooling_power_w + tower - model.plant_fan_w.sum())
    assert ev.sources.fan_power_measured and not ev.sources.compressor_power_measured
    p = _plant(codec.states(net, st, ev.cond, time_s=2.0, sources=ev.sources)).plant
    assert p.fan_power_source == pb.VALUE_SOURCE_MEASURED and p.compressor_power_source == pb.VALUE_SOURCE_MODELLED
    assert p.cooling_power_w == pytest.approx(st.cooling_power_w)


def test_what_if_keeps_a_measurement_only_where_the_change_leaves_it_alone(hall):
    net = hall.network
    live = CoolingLive(hall)
    live.apply_power([(r, 0.0, 110e3) for r in range(net.n_racks)])
    model = live.evaluate(0.0).tick.state
    n = len(net.cdu_ids)
    supply = np.full(n, float(model.loop_supply_c[0]) + 2.0)
    live.apply_equipment([_reading(net, 1.0, cdu_supply_c=supply, tower_power_w=123e3)])
    live.evaluate(2.0)
    now = live.present_conditions()
    assert np.isfinite(now.loop_supply_meas_c).all() and now.plant_fan_meas_w == 123e3
    # no change: before == after, measurements included
    same = live.what_if(now, 600.0, before=now)
    np.testing.assert_allclose(same.after.loop_supply_c, same.before.loop_supply_c)
    assert same.after.plant_power_w == same.before.plant_power_w
    # a CDU of loop 0 fails: loop 0 goes back to the model, the other loops and the plant keep theirs
    cdu0 = net.cdu_ids[int(np.flatnonzero(net.cdu_loop == 0)[0])]
    after = keep_measured(net, now, what_if(net, now, cdus_down=[cdu0]))
    assert np.isnan(after.loop_supply_meas_c[0]) and np.isfinite(after.loop_supply_meas_c[1:]).all()
    assert after.plant_fan_meas_w == 123e3
    # a hotter facility supply: every loop and the plant are the model's
    hot = keep_measured(net, now, now.with_(facility_supply_c=now.facility_supply_c + 5.0))
    assert np.isnan(hot.loop_supply_meas_c).all() and math.isnan(hot.plant_fan_meas_w)
    fc = live.what_if(now.with_(facility_supply_c=now.facility_supply_c + 5.0), 600.0, before=now)
    assert (fc.after.loop_supply_c >= fc.before.loop_supply_c - 2.0 - 1e-9).all()


def _equipment_msg(net, **plant) -> tpb.TelemetrySamples:
    msg = tpb.TelemetrySamples()
    b = msg.batch
    b.site_id = net.site_id
    b.sample_time.FromSeconds(100)
    b.equipment.plant.CopyFrom(tpb.PlantSample(**plant))
    return msg


def test_plant_readings_decode_with_nan_as_not_measured_and_reject_absurd_values(hall):
    net = hall.network
    nan = math.nan
    r = equipment_reading(_equipment_msg(net, outdoor_temp_c=31.0, wet_bulb_temp_c=nan, tower_power_w=5e4,
                                         chiller_power_w=nan), net, net.site_id)
    assert (r.dry_bulb_c, r.tower_power_w) == (31.0, 5e4) and math.isnan(r.wet_bulb_c)
    assert math.isnan(r.chiller_power_w)
    for plant, field in (
        ({"outdoor_temp_c": 75.0}, "batch.equipment.plant.outdoor_temp_c"),
        ({"outdoor_temp_c": 20.0, "wet_bulb_temp_c": 25.0}, "batch.equipment.plant.wet_bulb_temp_c"),
        ({"tower_power_w": -1.0}, "batch.equipment.plant.tower_power_w"),
        ({"chiller_power_w": math.inf}, "batch.equipment.plant.chiller_power_w"),
    ):
        full = {"outdoor_temp_c": nan, "wet_bulb_temp_c": nan, "tower_power_w": nan, "chiller_power_w": nan} | plant
        with pytest.raises(CodecError) as err:
            equipment_reading(_equipment_msg(net, **full), net, net.site_id)
        assert err.value.field == field


def test_a_reading_older_than_an_event_on_its_loop_does_not_count(hall):
    """A CDU fails after its loop's last reading: the reading describes the loop before the failure (its flow
    shared by both CDUs), so the loop is the model's until a newer reading comes; other loops keep theirs."""
    net = hall.network
    live = CoolingLive(hall)
    live.apply_power([(r, 0.0, 110e3) for r in range(net.n_racks)])
    model = live.evaluate(0.0).tick.state
    n = len(net.cdu_ids)
    supply = np.full(n, float(model.loop_supply_c[0]) + 1.0)
    flow = np.array([model.loop_flow_lpm[net.cdu_loop[i]] / np.sum(net.cdu_loop == net.cdu_loop[i])
                     for i in range(n)])
    live.apply_equipment([_reading(net, 1.0, cdu_supply_c=supply, cdu_flow_lpm=flow, tower_power_w=5e4)])
    ev = live.evaluate(2.0)
    assert ev.sources.loop_flow_measured.all() and ev.sources.fan_power_measured
    cdu = int(np.flatnonzero(net.cdu_loop == 0)[0])
    live.apply_event(EquipmentEvent("cdu_failure", net.cdu_ids[cdu], 3.0))
    ev = live.evaluate(4.0)
    assert not ev.sources.loop_flow_measured[0] and not ev.sources.loop_supply_measured[0]
    assert ev.sources.loop_flow_measured[1:].all() and ev.sources.fan_power_measured
    live.apply_equipment([_reading(net, 5.0, cdu_supply_c=supply, cdu_flow_lpm=flow)])
    ev = live.evaluate(6.0)
    assert ev.sources.loop_flow_measured[0] and ev.sources.loop_supply_measured[0]    # the surviving CDU's
    live.apply_event(EquipmentEvent("plant_unit_failure", net.plant_ids[0], 7.0))
    assert not live.evaluate(8.0).sources.fan_power_measured                          # plant power too
