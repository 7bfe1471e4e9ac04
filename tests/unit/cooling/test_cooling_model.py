"""The cooling network (issue 10 unit list): the energy balance closes; losing flow never cools
anything; time-to-throttle shrinks as the supply temperature rises; an N+1 group with one CDU lost
carries the load when it has the capacity and raises an alert when it does not; plant power vs
ambient; CRAH loss; suspect sensors."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from twin.cooling.domain import (
    CoolingAlert,
    cooling_alerts,
    delta_t_k,
    design_conditions,
    evaluate,
    forecast,
    heat_w,
    sensor_alerts,
    split_power,
    steady_state,
    steady_temperatures,
    what_if,
)
from twin.cooling.site import build_cooling_site, coolant_of
from twin.core.facility import FacilitySpec, load_facility_spec, preset_names
from twin.core.facility.spec import PRESETS_DIR


@pytest.fixture(scope="module")
def hall():
    return build_cooling_site(load_facility_spec("gb200-nvl72-hall"))


@pytest.fixture(scope="module")
def su():
    return build_cooling_site(load_facility_spec("dgx-h100-su"))


def loaded(site, board_w: float, activity: float = 0.3, it_per_gpu_w: float | None = None):
    """Every GPU at board_w; rack IT = GPUs x it_per_gpu_w (default board x 1.35: CPUs, NICs, losses)."""
    g = site.gpus
    n = len(g.gpu_rack)
    board = np.full(n, board_w)
    core, hbm = split_power(board, np.full(n, activity), g.hbm_peak_TBps)
    it = np.bincount(
        g.gpu_rack, weights=np.full(n, it_per_gpu_w or 1.35 * board_w), minlength=site.network.n_racks
    )
    return core, hbm, it


def gpu_state(site, core, hbm, st):
    return steady_state(core, hbm, st.rack_coolant_c[site.gpus.gpu_rack])


def test_100_kw_at_150_lpm_of_water_is_9_56_k():
    dt = float(delta_t_k(coolant_of("water"), 100e3, 150.0, 20.0))
    assert dt == pytest.approx(9.56, rel=0.005)
    assert float(heat_w(coolant_of("water"), 150.0, 20.0, 20.0 + dt)) == pytest.approx(100e3)
    assert float(delta_t_k(coolant_of("pg25"), 100e3, 150.0, 20.0)) > dt  # glycol carries less per litre


@pytest.mark.parametrize("preset", preset_names())
def test_energy_balance_closes(preset):
    site = build_cooling_site(load_facility_spec(preset))
    net = site.network
    rng = np.random.default_rng(7)
    it = rng.uniform(0, 1, net.n_racks) * 60e3
    st = evaluate(net, it, design_conditions(net, dry_bulb_c=20.0, wet_bulb_c=14.0))
    np.testing.assert_allclose(st.rack_liquid_w + st.rack_air_w, it, rtol=1e-3)  # every rack to 0.1 %
    assert st.cdu_heat_w.sum() == pytest.approx(st.rack_liquid_w.sum(), rel=1e-9, abs=1e-6)
    assert st.crah_heat_w.sum() == pytest.approx(st.rack_air_w[net.rack_air_group >= 0].sum(), rel=1e-9)
    if len(net.loop_ids):
        q = heat_w(net.secondary_coolant, st.loop_flow_lpm, st.loop_supply_c, st.loop_return_c)
        np.testing.assert_allclose(q, st.loop_heat_w, rtol=1e-9)  # Q = ṁ c_p ΔT per loop
    work = st.cooling_power_w - st.plant_power_w  # CDU pumps + CRAH fans
    assert st.plant_load_w == pytest.approx(st.it_power_w + work, rel=1e-12)
    assert st.plant_unit_heat_w.sum() == pytest.approx(st.plant_load_w, rel=1e-12)
    assert 1.0 < st.pue_cooling_part < 1.6


def test_losing_flow_never_cools_anything(hall):
    net = hall.network
    core, hbm, it = loaded(hall, 1000.0)
    cond = design_conditions(net, dry_bulb_c=20.0, wet_bulb_c=14.0)
    base = evaluate(net, it, cond)
    base_gpu, _ = steady_temperatures(hall.gpu, core, hbm, base.rack_coolant_c[hall.gpus.gpu_rack])
    rng = np.random.default_rng(3)
    for _ in range(20):
        lost = what_if(
            net,
            cond,
            cdu_flow_factor={c: float(rng.uniform(0, 1)) for c in net.cdu_ids if rng.random() < 0.5},
            rack_flow_factor={r: float(rng.uniform(0, 1)) for r in net.rack_ids if rng.random() < 0.3},
        )
        st = evaluate(net, it, lost)
        assert np.all(st.rack_flow_lpm <= base.rack_flow_lpm + 1e-9)
        assert np.all(st.rack_return_c >= base.rack_return_c - 1e-9)
        assert np.all(st.rack_coolant_c >= base.rack_coolant_c - 1e-9)
        gpu, _ = steady_temperatures(hall.gpu, core, hbm, st.rack_coolant_c[hall.gpus.gpu_rack])
        assert np.all(gpu >= base_gpu - 1e-9)
        fc = forecast(net, hall.gpus, hall.gpu, gpu_state(hall, core, hbm, base), core, hbm, it, cond, lost)
        assert np.all(np.isfinite(fc.gpu_time_s) | ~np.isfinite(fc.gpu_time_s))  # defined for every GPU
    stopped = evaluate(net, it, what_if(net, cond, rack_flow_factor={"a-0000": 0.0}))
    assert stopped.rack_flow_lpm[0] == 0 and stopped.rack_return_c[0] == np.inf


def test_time_to_throttle_shrinks_as_supply_temperature_rises(hall):
    net = hall.network
    core, hbm, it = loaded(hall, 1200.0)
    cond = design_conditions(net, dry_bulb_c=20.0, wet_bulb_c=14.0)
    state = gpu_state(hall, core, hbm, evaluate(net, it, cond))
    times = []
    for rise in (0.0, 10.0, 17.0, 20.0, 25.0, 30.0):
        fc = forecast(
            net,
            hall.gpus,
            hall.gpu,
            state,
            core,
            hbm,
            it,
            cond,
            what_if(net, cond, facility_supply_rise_k=rise),
        )
        times.append(float(fc.rack_time_s.min()))
    assert times[0] == np.inf  # today: no throttling
    finite = [t for t in times if np.isfinite(t)]
    assert len(finite) >= 3
    assert all(b <= a for a, b in zip(times, times[1:], strict=False))
    assert all(b < a for a, b in zip(finite, finite[1:], strict=False))


def test_n_plus_1_loop_carries_one_cdu_loss_when_it_can(hall):
    net = hall.network
    core, hbm, it = loaded(hall, 1000.0)
    cond = design_conditions(net, dry_bulb_c=20.0, wet_bulb_c=14.0)
    state = gpu_state(hall, core, hbm, evaluate(net, it, cond))
    one = what_if(net, cond, cdus_down=["cdu-a-1"])
    fc = forecast(net, hall.gpus, hall.gpu, state, core, hbm, it, cond, one)
    assert fc.after.loop_carries.all() and fc.gpus_affected.size == 0
    alerts = cooling_alerts(net, fc.after, hall.gpus, fc)
    assert [a.kind for a in alerts] == ["redundancy_at_risk"] and alerts[0].entity_id == "loop-a"
    # both CDUs of loop a lost: the racks of loop a (and only those) throttle within minutes
    both = what_if(net, cond, cdus_down=["cdu-a-1", "cdu-a-2"])
    fc = forecast(net, hall.gpus, hall.gpu, state, core, hbm, it, cond, both)
    racks = {net.rack_ids[r] for r in fc.racks_affected}
    assert racks == {f"a-{i:04d}" for i in range(8)}
    assert 30.0 < fc.rack_time_s[:8].max() < 900.0
    alerts = cooling_alerts(net, fc.after, hall.gpus, fc)
    throttle = [a for a in alerts if a.kind == "throttle_predicted"]
    assert {a.entity_id for a in throttle} == racks and all(len(a.gpus) == 72 for a in throttle)
    assert any(a.kind == "capacity_exceeded" and a.entity_id == "loop-a" for a in alerts)


def _tight_hall() -> FacilitySpec:
    """The GB200 hall with an explicit loop per row of two 600 kW CDUs (N: together they carry the
    row's 807 kW of liquid heat at nameplate, one alone does not)."""
    d = yaml.safe_load((PRESETS_DIR / "gb200-nvl72-hall.yaml").read_text())
    cdus = [
        {"id": f"cdu-{row}-{k}", "capacity_kw": 600, "flow_lpm": 2000, "pump_kw": 11}
        for row in "ab"
        for k in (1, 2)
    ]
    d["cooling"]["topology"] = {
        "plant": [
            {"id": f"dry-{i}", "kind": "dry_cooler", "capacity_kw": 800, "approach_k": 8, "fan_kw": 20}
            for i in range(4)
        ],
        "cdus": cdus,
        "cdu_groups": [
            {
                "id": f"loop-{row}",
                "redundancy": "N",
                "members": [f"cdu-{row}-1", f"cdu-{row}-2"],
                "racks": [f"row:{row}"],
            }
            for row in "ab"
        ],
        "crahs": [
            {"id": f"crah-{i}", "capacity_kw": 200, "supply_air_temp_c": 24, "fan_kw": 6} for i in range(3)
        ],
        "crah_groups": [
            {
                "id": "air",
                "redundancy": "N+1",
                "members": ["crah-0", "crah-1", "crah-2"],
                "racks": ["hall:hall1"],
            }
        ],
    }
    return FacilitySpec.model_validate(d)


def test_one_cdu_lost_without_the_capacity_raises_an_alert():
    site = build_cooling_site(_tight_hall())
    net = site.network
    core, hbm, it = loaded(site, 1100.0)  # 107 kW IT, 91 kW liquid per rack: 727 kW per loop
    cond = design_conditions(net, dry_bulb_c=20.0, wet_bulb_c=14.0)
    st = evaluate(net, it, cond)
    assert st.loop_carries.all() and not st.loop_survives_one_more.any()
    fc = forecast(
        net,
        site.gpus,
        site.gpu,
        gpu_state(site, core, hbm, st),
        core,
        hbm,
        it,
        cond,
        what_if(net, cond, cdus_down=["cdu-b-2"]),
    )
    assert list(fc.after.loop_carries) == [True, False]
    alerts = cooling_alerts(net, fc.after, site.gpus, fc)
    assert CoolingAlert in {type(a) for a in alerts}
    exceeded = [a for a in alerts if a.kind == "capacity_exceeded"]
    assert [a.entity_id for a in exceeded] == ["loop-b"] and exceeded[0].severity == "critical"
    # the survivor runs past its rating: row b's coolant is hotter, row a's is not
    assert (fc.after.rack_coolant_c[8:] > fc.before.rack_coolant_c[8:]).all()
    np.testing.assert_allclose(fc.after.rack_coolant_c[:8], fc.before.rack_coolant_c[:8])


def test_plant_power_rises_with_ambient_and_the_supply_follows_a_lost_plant(hall, su):
    for site in (hall, su):
        net = site.network
        _, _, it = loaded(site, 900.0)
        powers = [
            evaluate(net, it, design_conditions(net, dry_bulb_c=db, wet_bulb_c=db - 8)).plant_power_w
            for db in (5.0, 15.0, 25.0, 35.0)
        ]
        assert all(b >= a for a, b in zip(powers, powers[1:], strict=False)) and powers[-1] > powers[0]
        cond = design_conditions(net, dry_bulb_c=20.0, wet_bulb_c=14.0)
        half = what_if(net, cond, plant_down=list(net.plant_ids[: len(net.plant_ids) // 2 + 1]))
        assert evaluate(net, it * 2.5, half).facility_supply_c > cond.facility_supply_c
    # the chiller plant runs its compressors on a hot day and economizes on a cold one
    net = su.network
    _, _, it = loaded(su, 600.0)
    hot = evaluate(net, it, design_conditions(net, dry_bulb_c=35.0, wet_bulb_c=25.0))
    cold = evaluate(net, it, design_conditions(net, dry_bulb_c=0.0, wet_bulb_c=-3.0))
    assert hot.plant_compressor_w.sum() > 0 and cold.plant_compressor_w.sum() == 0


def test_crah_loss_on_air_racks(su):
    net = su.network
    core, hbm, it = loaded(su, 650.0, it_per_gpu_w=1200.0)
    cond = design_conditions(net, dry_bulb_c=20.0, wet_bulb_c=14.0)
    state = gpu_state(su, core, hbm, evaluate(net, it, cond))
    one = forecast(
        net, su.gpus, su.gpu, state, core, hbm, it, cond, what_if(net, cond, crahs_down=["crah-hall1-1"])
    )
    assert one.after.air_carries.all() and one.gpus_affected.size == 0
    every = forecast(
        net, su.gpus, su.gpu, state, core, hbm, it, cond, what_if(net, cond, crahs_down=list(net.crah_ids))
    )
    assert every.gpus_affected.size == len(su.gpus.gpu_rack)
    assert 60.0 < every.rack_time_s.min() < 3600.0


def test_suspect_sensor_when_heat_contradicts_flow_and_temperatures(hall):
    net = hall.network
    flow = np.array([1000.0, 1000.0, 1000.0, np.nan])
    sup, ret = np.full(4, 33.0), np.full(4, 39.0)
    q = heat_w(net.secondary_coolant, flow[:1], 33.0, 39.0)[0]
    alerts = sensor_alerts(net, np.array([q, 1.3 * q, 0.98 * q, 50e3]), flow, sup, ret)
    assert [a.entity_id for a in alerts] == [net.cdu_ids[1]]
    # consistent with its own flow and temperatures, but not with the heat its racks make
    alerts = sensor_alerts(
        net, np.array([q, q, q, q]), flow, sup, ret, model_heat_w=np.array([q, q, 0.5 * q, np.nan])
    )
    assert [a.entity_id for a in alerts] == [net.cdu_ids[2]] and "IT power" in alerts[0].message


def test_unknown_ids_in_a_what_if_are_named(hall):
    net = hall.network
    with pytest.raises(KeyError, match="unknown CDU 'cdu-z-9'"):
        what_if(net, design_conditions(net), cdus_down=["cdu-z-9"])


def test_a_loop_holds_its_secondary_setpoint_while_the_approach_allows():
    d = yaml.safe_load((PRESETS_DIR / "gb200-nvl72-hall.yaml").read_text())
    d["cooling"]["topology"] = {
        "plant": [{"id": "dry-1", "kind": "dry_cooler", "capacity_kw": 2400, "approach_k": 8, "fan_kw": 60}],
        "cdus": [{"id": f"cdu-{k}", "capacity_kw": 1400, "flow_lpm": 2000, "pump_kw": 11} for k in (1, 2, 3)],
        "cdu_groups": [
            {
                "id": "loop",
                "redundancy": "N+1",
                "members": ["cdu-1", "cdu-2", "cdu-3"],
                "racks": ["row:a", "row:b"],
                "supply_temp_c": 36.0,
            }
        ],
        "crahs": [
            {"id": f"crah-{i}", "capacity_kw": 200, "supply_air_temp_c": 24, "fan_kw": 6} for i in range(3)
        ],
        "crah_groups": [
            {
                "id": "air",
                "redundancy": "N+1",
                "members": ["crah-0", "crah-1", "crah-2"],
                "racks": ["hall:hall1"],
            }
        ],
    }
    site = build_cooling_site(FacilitySpec.model_validate(d))
    net = site.network
    _, _, it = loaded(site, 1000.0)
    cond = design_conditions(net, dry_bulb_c=20.0, wet_bulb_c=14.0)
    assert evaluate(net, it, cond).loop_supply_c[0] == pytest.approx(36.0)  # 32 °C + ~2 K approach < 36
    hot = evaluate(net, it, what_if(net, cond, facility_supply_rise_k=6.0))
    assert hot.loop_supply_c[0] > 38.0  # 38 °C + approach


@pytest.mark.parametrize("preset", preset_names())
def test_generated_n_plus_1_groups_survive_any_single_failure_at_nameplate(preset):
    from twin.core.facility.power import rack_nameplate_w

    spec = load_facility_spec(preset)
    site = build_cooling_site(spec)
    net = site.network
    it = np.array([rack_nameplate_w(spec, r.rack_type) for r in site.inventory.racks])
    cond = design_conditions(net)
    for cdu in net.cdu_ids:
        assert evaluate(net, it, what_if(net, cond, cdus_down=[cdu])).loop_carries.all(), cdu
    for crah in net.crah_ids[:5]:
        assert evaluate(net, it, what_if(net, cond, crahs_down=[crah])).air_carries.all(), crah


def test_power_curves_replace_the_affinity_law_and_constant_cop():
    d = yaml.safe_load((PRESETS_DIR / "dgx-h100-su.yaml").read_text())
    flat = {"points": [0.0, 1.0], "power_fraction": [1.0, 1.0]}  # fixed-speed fans
    d["cooling"]["topology"] = {
        "plant": [
            {
                "id": "ch-1",
                "kind": "chiller",
                "capacity_kw": 600,
                "approach_k": 6,
                "fan_kw": 8,
                "cop": 6.28,
                "economizer": False,
                "fan_curve": flat,
                "compressor_part_load": {"points": [0.1, 0.5, 1.0], "power_fraction": [2.0, 1.2, 1.0]},
            }
        ],
        "crahs": [
            {"id": f"crah-{i}", "capacity_kw": 150, "supply_air_temp_c": 22, "fan_kw": 4, "fan_curve": flat}
            for i in range(4)
        ],
        "crah_groups": [
            {
                "id": "air",
                "redundancy": "N+1",
                "members": [f"crah-{i}" for i in range(4)],
                "racks": ["row:su1"],
            }
        ],
    }
    site = build_cooling_site(FacilitySpec.model_validate(d))
    net = site.network
    cond = design_conditions(net, dry_bulb_c=30.0, wet_bulb_c=22.0)
    low, high = (evaluate(net, np.full(net.n_racks, w), cond) for w in (5e3, 40e3))
    np.testing.assert_allclose(low.crah_fan_w, 4e3)  # flat curve: full power at any load
    assert low.plant_fan_w[0] == pytest.approx(8e3)
    # the compressor's part-load penalty: more power per kW of heat at low load
    assert low.plant_compressor_w[0] / low.plant_load_w > 1.5 * high.plant_compressor_w[0] / high.plant_load_w
