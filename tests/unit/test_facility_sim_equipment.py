"""facility-sim cooling equipment readings: the topology's ids, heat balance with the simulated racks, ingest's
validation, and the wiring (on by default, every Nth tick, off with the flag)."""

from datetime import UTC, datetime

import numpy as np
import pytest

from twin.core import topics
from twin.core.clock import FixedClock
from twin.core.facility.cooling import COOLANTS, resolved_cooling
from twin.core.facility.spec import load_facility_spec
from twin.facility_sim.adapters.equipment import EquipmentFeed
from twin.facility_sim.adapters.publisher import MemoryPublisher
from twin.facility_sim.app import SimConfig, build_sim
from twin.facility_sim.domain.model import FacilityModel
from twin.facility_sim.layout import build_layout
from twin.ingest.adapters.codec import decode_equipment, is_equipment
from twin.ingest.domain.equipment import limits_from_spec, validate_equipment

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _tick(preset: str, racks: int | None = None):
    layout = build_layout(load_facility_spec(preset), racks=racks)
    model = FacilityModel(layout.arrays, seed=3)
    state = model.initial_state()
    for k in range(3):
        state, tick = model.step(state, float(k), 1.0)
    return layout, tick


def test_liquid_hall_reports_every_cdu_crah_and_the_plant_with_heat_from_the_racks():
    layout, tick = _tick("gb200-nvl72-hall")
    spec = layout.spec
    topo = resolved_cooling(spec)
    msg = EquipmentFeed(layout).message(tick, T0, sequence=7)
    eq = msg.equipment
    assert msg.site_id == spec.site_id and not msg.rack_id and not msg.nodes and msg.sequence == 7
    assert sorted(c.cdu_id for c in eq.cdus) == sorted(c.id for c in topo.cdus)
    assert sorted(c.crah_id for c in eq.crahs) == sorted(c.id for c in topo.crahs)
    assert eq.HasField("plant")

    heat = tick.rack_input_w
    lf = layout.arrays.rack_liquid_fraction
    # liquid + air heat = the racks' power, split by their liquid fraction
    assert sum(c.heat_removed_w for c in eq.cdus) == pytest.approx(float((heat * lf).sum()), rel=1e-9)
    supply_air = {c.id: c.supply_air_temp_c for c in topo.crahs}
    for c in eq.crahs:
        assert c.supply_air_temp_c == supply_air[c.crah_id] < c.return_air_temp_c
        assert 30.0 <= c.fan_speed_pct <= 100.0

    water = COOLANTS[topo.secondary_coolant]
    for c in eq.cdus:
        # each CDU's heat = m·c_p·ΔT of its own flow and temperatures (what the twin checks a sensor against)
        t_mean = 0.5 * (c.secondary_supply_temp_c + c.secondary_return_temp_c)
        m_kg_s = c.secondary_flow_lpm / 60.0 / 1000.0 * water.density_at(t_mean)
        q = m_kg_s * water.cp_at(t_mean) * (c.secondary_return_temp_c - c.secondary_supply_temp_c)
        assert q == pytest.approx(c.heat_removed_w, rel=0.01)
        assert c.secondary_supply_temp_c > c.primary_supply_temp_c       # the heat exchanger's approach
        assert c.primary_return_temp_c < c.secondary_return_temp_c
        assert 0 < c.pump_speed_pct <= 100 and c.differential_pressure_kpa > 0
    assert eq.plant.wet_bulb_temp_c <= eq.plant.outdoor_temp_c
    assert eq.plant.tower_power_w > 0 or eq.plant.chiller_power_w > 0

    # ingest accepts it as it is
    assert validate_equipment(decode_equipment(msg), limits_from_spec(spec), T0) == []


def test_more_power_more_heat_and_warmer_returns():
    layout, tick = _tick("gb200-nvl72-hall")
    feed = EquipmentFeed(layout)
    low = feed.message(tick, T0, 1).equipment
    hot = type(tick)(**{**tick.__dict__, "rack_input_w": tick.rack_input_w * 1.2})
    high = feed.message(hot, T0, 2).equipment
    for a, b in zip(low.cdus, high.cdus, strict=True):
        assert b.heat_removed_w == pytest.approx(1.2 * a.heat_removed_w)
        assert b.secondary_return_temp_c > a.secondary_return_temp_c
        assert b.secondary_supply_temp_c == a.secondary_supply_temp_c
    assert sum(c.fan_speed_pct for c in high.crahs) >= sum(c.fan_speed_pct for c in low.crahs)


def test_rack_subset_reports_only_the_equipment_serving_it():
    layout, tick = _tick("site-100k", racks=10)
    msg = EquipmentFeed(layout).message(tick, T0, 1)
    spec = layout.spec
    topo = resolved_cooling(spec)
    hall1 = next(g for g in topo.crah_groups if "hall:hall1" in g.racks or g.id.endswith("hall1"))
    assert not msg.equipment.cdus                       # air-cooled DGX racks: no CDU
    assert sorted(c.crah_id for c in msg.equipment.crahs) == sorted(hall1.members)
    assert validate_equipment(decode_equipment(msg), limits_from_spec(spec), T0) == []


@pytest.mark.parametrize(("every", "expected"), [(1, 6), (3, 2)])
async def test_build_sim_wires_equipment_every_nth_tick(every, expected):
    cfg = SimConfig(facility="gb200-nvl72-hall", metrics_port=None, create_topics=False, jobs=False,
                    equipment_every=every)
    sim = await build_sim(cfg, FixedClock(T0))
    pub = sim.publisher = MemoryPublisher()
    await sim.start()
    for _ in range(6):
        await sim.tick(T0)
    await sim.stop()
    site_id = sim.layout.site_id
    batches = [(k, topics.FACILITY_TELEMETRY.decode(v)) for t, k, v, _ in pub.records
               if t == topics.FACILITY_TELEMETRY.name]
    eq = [(k, m) for k, m in batches if is_equipment(m)]
    assert len(eq) == expected == sim.stats.equipment_batches
    assert all(k == site_id.encode() for k, _ in eq)
    assert [m.sequence for _, m in eq] == [k + 1 for k in range(0, 6, every)]
    assert sim.stats.good == len(batches) - len(eq)          # rack batches are counted apart


async def test_equipment_flag_turns_it_off():
    cfg = SimConfig(facility="gb200-nvl72-hall", metrics_port=None, create_topics=False, jobs=False, equipment=False)
    sim = await build_sim(cfg, FixedClock(T0))
    assert sim.equipment is None
    with pytest.raises(ValueError, match="equipment_every"):
        SimConfig(facility="gb200-nvl72-hall", equipment_every=0)


def test_feed_refuses_a_bad_period():
    layout, _ = _tick("gb200-nvl72-hall")
    with pytest.raises(ValueError):
        EquipmentFeed(layout, every_ticks=0)
    assert np.isfinite(EquipmentFeed(layout).loop_supply_c).all()


def test_the_cooling_twin_takes_the_readings_without_a_suspect_sensor():
    """Cross-check (the simulator shares no code with the twin): the twin fed the same racks' power finds the
    simulated CDU heat consistent with its own flow and temperatures and with the racks' heat."""
    from twin.cooling.adapters.inputs import equipment_reading
    from twin.cooling.live import CoolingLive
    from twin.cooling.site import build_cooling_site
    from twin.telemetry.v1 import telemetry_pb2 as tpb

    layout, tick = _tick("gb200-nvl72-hall")
    spec = layout.spec
    msg = EquipmentFeed(layout).message(tick, T0, 3)
    site = build_cooling_site(spec)
    live = CoolingLive(site)
    index = {r: i for i, r in enumerate(site.network.rack_ids)}
    live.apply_power([(index[r], 3.0, float(w)) for r, w in zip(layout.rack_ids, tick.rack_input_w, strict=True)])
    assert live.apply_equipment([equipment_reading(tpb.TelemetrySamples(batch=msg), site.network, spec.site_id)]) == 4
    ev = live.evaluate(3.0)
    assert ev.sensor_alerts == []
    assert [c.heat_removed_w for c in msg.equipment.cdus] == pytest.approx(list(ev.tick.state.cdu_heat_w), rel=1e-6)
