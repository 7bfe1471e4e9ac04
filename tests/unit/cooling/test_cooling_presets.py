"""Every preset is self-consistent (issue 10): at its design ambient and every rack at nameplate IT power,
its plant holds the facility supply setpoint with capacity to spare, and every CDU loop and air group
carries its heat. A preset whose heat rejection cannot reach the setpoint at that ambient (dry coolers
leaving water at dry bulb + approach above it) fails here, naming the preset."""

from __future__ import annotations

import numpy as np
import pytest

from twin.cooling.domain.network import CHILLER, DRY_COOLER, TOWER, design_conditions, evaluate
from twin.cooling.site import build_cooling_site
from twin.core.facility import load_facility_spec
from twin.core.facility.power import rack_nameplate_w

PRESETS = ("dgx-h100-su", "gb200-nvl72-hall", "site-100k")


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_holds_its_design_supply_at_design_ambient_and_full_load(preset):
    spec = load_facility_spec(preset)
    net = build_cooling_site(spec).network
    per_type: dict[str, float] = {}
    full = np.array([per_type.setdefault(r.rack_type, rack_nameplate_w(spec, r.rack_type))
                     for r in build_cooling_site(spec).inventory.racks])
    assert full.sum() > 0
    cond = design_conditions(net)
    assert (cond.dry_bulb_c, cond.wet_bulb_c) == (spec.cooling.design_dry_bulb_c, spec.cooling.design_wet_bulb_c)
    st = evaluate(net, full, cond)
    assert st.facility_supply_c == pytest.approx(spec.cooling.facility_supply_temp_c, abs=1e-9), (
        f"{preset}: facility supply {st.facility_supply_c:.2f} °C at design ambient, setpoint "
        f"{spec.cooling.facility_supply_temp_c} °C")
    assert st.plant_capacity_w >= st.plant_load_w, f"{preset}: plant capacity below its load at design"
    assert st.loop_carries.all() and st.air_carries.all(), preset
    # fan-only units (no compressor) reach the setpoint only when their heat sink + approach is below it
    fan_only = net.plant_kind != CHILLER
    sink = np.where(net.plant_kind == DRY_COOLER, cond.dry_bulb_c, cond.wet_bulb_c)
    assert (sink[fan_only] + net.plant_approach_k[fan_only] <= net.facility_supply_c + 1e-9).all(), preset
    assert set(np.unique(net.plant_kind).tolist()) <= {TOWER, DRY_COOLER, CHILLER}


def test_a_dry_cooler_plant_at_a_hot_design_ambient_fails_the_check():
    """The check can fail: the gb200 hall as it was (dry coolers, 32 °C supply, 38 °C design dry bulb)."""
    spec = load_facility_spec("gb200-nvl72-hall")
    bad = spec.model_copy(update={"cooling": spec.cooling.model_copy(update={"heat_rejection": "dry_cooler"})})
    site = build_cooling_site(bad)
    net = site.network
    full = np.array([rack_nameplate_w(bad, r.rack_type) for r in site.inventory.racks])
    st = evaluate(net, full, design_conditions(net))
    assert st.facility_supply_c > bad.cooling.facility_supply_temp_c + 5.0
