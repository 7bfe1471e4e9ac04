"""Where the presets throttle (README audit: "the gb200 hall never throttles in a sweep").

The plant's shortfall reaches the GPUs: fan-only plants past full speed let the facility supply rise with the
ambient (plant power flat, GPUs warmer), chilled-water CRAHs cannot make air colder than the facility water
they get, and a plant with no unit left makes every rack's coolant ramp instead of answering NaN."""

from __future__ import annotations

import numpy as np
import pytest

from twin.cooling.domain.network import design_conditions, evaluate
from twin.cooling.domain.thermal import split_power, steady_state
from twin.cooling.domain.whatif import forecast, what_if
from twin.cooling.site import build_cooling_site
from twin.core.facility import load_facility_spec
from twin.core.facility.power import rack_nameplate_w


def _full(preset: str):
    """Every rack at nameplate IT, every GPU at its model's max power (memory activity 0.3)."""
    spec = load_facility_spec(preset)
    site = build_cooling_site(spec)
    rack_w = np.array([rack_nameplate_w(spec, r.rack_type) for r in site.inventory.racks])
    model = next(iter(spec.gpu_models.values()))
    board = np.full(len(site.gpus.gpu_rack), model.max_w)
    core, hbm = split_power(board, np.full(len(board), 0.3), site.gpus.hbm_peak_TBps)
    c0 = design_conditions(site.network)
    coolant = evaluate(site.network, rack_w, c0).rack_coolant_c[site.gpus.gpu_rack]
    return site, rack_w, core, hbm, c0, steady_state(core, hbm, coolant)


def _forecast(preset: str, **change):
    site, rack_w, core, hbm, c0, state = _full(preset)
    after = what_if(site.network, c0, **change)
    return forecast(site.network, site.gpus, site.gpu, state, core, hbm, rack_w, c0, after)


def test_crah_supply_air_is_never_colder_than_the_facility_water():
    """dgx-h100-su: rear-door racks on CRAHs at 22 °C fed by 18 °C chilled water. Raise the water to 40 °C: the
    coils cannot make 22 °C air from it (second law); the old twin kept the air racks' inlet at 22 °C."""
    site, rack_w, *_ = _full("dgx-h100-su")
    net = site.network
    design = evaluate(net, rack_w, design_conditions(net))
    assert np.allclose(design.rack_inlet_air_c, 22.0) and np.allclose(design.crah_supply_c, 22.0)
    warm = evaluate(net, rack_w, what_if(net, design_conditions(net), facility_supply_rise_k=40.0 - 18.0))
    assert np.allclose(warm.crah_supply_c, 40.0)
    assert np.allclose(warm.rack_inlet_air_c, 40.0)


def test_air_racks_throttle_when_the_facility_water_is_too_warm():
    """H100 at 700 W, 0.044 K/W to the inlet: ~31 K above the air, slowdown 87 °C -> throttles with ~56 °C
    water feeding the CRAHs (~58 °C with the HBM's share off the die; 60 °C here), not at 40 °C."""
    assert len(_forecast("dgx-h100-su", facility_supply_rise_k=40.0 - 18.0).gpus_affected) == 0
    fc = _forecast("dgx-h100-su", facility_supply_rise_k=60.0 - 18.0)
    assert len(fc.gpus_affected) == len(fc.gpu_rack)
    assert np.max(fc.gpu_time_s) < 600.0


@pytest.mark.parametrize("preset", ["dgx-h100-su", "gb200-nvl72-hall"])
def test_losing_every_plant_unit_throttles_every_gpu(preset):
    """No heat rejection at all: the facility supply has no steady value (+inf). The old twin turned that into
    NaN temperatures and answered "no throttle"; now every rack's coolant ramps (liquid: its liquid heat into
    the coolant it holds; air: the room without CRAHs)."""
    site, *_ = _full(preset)
    fc = _forecast(preset, plant_down=list(site.network.plant_ids))
    assert not np.isfinite(fc.after.facility_supply_c)
    assert len(fc.gpus_affected) == len(fc.gpu_rack)
    assert np.max(fc.gpu_time_s) < 1800.0


def test_gb200_hall_wet_bulb_sweep_raises_supply_once_the_tower_fans_are_at_full_speed():
    """Towers (4 K approach at design, 2.4 MW for 1.9 MW of heat at nameplate) hold 32 °C until the wet bulb
    reaches 32 - 4 x 0.79 = 28.8 °C; above it their fans are at full speed (plant power flat) and the facility
    supply rises 1 K per K of wet bulb, which the GPUs see. Throttling needs a wet bulb near 46 °C, far above
    any recorded (~35 °C)."""
    rows = {wb: _forecast("gb200-nvl72-hall", wet_bulb_c=wb, dry_bulb_c=45.0) for wb in (28.0, 30.0, 34.0, 40.0)}
    assert rows[28.0].after.facility_supply_c == pytest.approx(32.0)
    assert rows[34.0].after.facility_supply_c - rows[30.0].after.facility_supply_c == pytest.approx(4.0)
    assert rows[40.0].after.plant_power_w == pytest.approx(rows[30.0].after.plant_power_w)
    assert rows[40.0].after.rack_coolant_c.max() - rows[30.0].after.rack_coolant_c.max() == pytest.approx(
        10.0, abs=0.2)
    assert all(len(fc.gpus_affected) == 0 for fc in rows.values())


def test_gb200_hall_throttles_at_full_power_near_50_c_facility_supply():
    """1,200 W on 0.03 K/W cold plates: ~36 K above the coolant, slowdown 87 °C; the loop adds its approach and
    half the rack's ΔT (~4 K), the HBM's share bypasses the die -> throttling from ~49.5 °C facility supply at
    full power."""
    assert len(_forecast("gb200-nvl72-hall", facility_supply_rise_k=45.0 - 32.0).gpus_affected) == 0
    fc = _forecast("gb200-nvl72-hall", facility_supply_rise_k=50.0 - 32.0)
    assert len(fc.gpus_affected) == len(fc.gpu_rack)
