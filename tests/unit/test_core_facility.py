"""Facility spec validation, presets and the expanded inventory (DESIGN §3)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from twin.core.facility import FacilitySpec, build_inventory, load_facility_spec, preset_names
from twin.core.facility.spec import PRESETS_DIR


def spec_dict(name: str = "dgx-h100-su") -> dict:
    return yaml.safe_load((PRESETS_DIR / f"{name}.yaml").read_text())


@pytest.mark.parametrize(("preset", "racks", "nodes", "gpus", "domains"), [
    ("dgx-h100-su", 8, 32, 256, 32),            # one SuperPOD scalable unit, NVLink domain = HGX node
    ("gb200-nvl72-hall", 16, 288, 1152, 16),    # NVLink domain = the whole NVL72 rack
    ("site-100k", 3125, 12500, 100_000, 12500),
])
def test_presets_expand_to_their_published_sizes(preset, racks, nodes, gpus, domains):
    inv = build_inventory(load_facility_spec(preset))
    assert (len(inv.racks), inv.n_nodes, inv.n_gpus) == (racks, nodes, gpus)
    assert int(inv.gpu_nvlink_domain.max()) + 1 == domains
    assert np.bincount(inv.gpu_nvlink_domain).min() == gpus // domains


def test_every_preset_is_listed_and_valid():
    assert set(preset_names()) == {"dgx-h100-su", "gb200-nvl72-hall", "site-100k"}


def test_ids_and_uplink_index_round_trip():
    inv = build_inventory(load_facility_spec("dgx-h100-su"))
    rack = inv.racks[3]
    assert rack.rack_id == "su1-0003"
    assert inv.node_ids(rack)[0] == "su1-0003-n00"
    assert inv.nic_ids(rack)[:2] == ["su1-0003-n00/nic0", "su1-0003-n00/nic1"]
    assert inv.node_index["su1-0003-n02"] == 14
    uplinks = inv.uplink_ids()
    assert len(uplinks) == inv.rails * inv.n_leaf_groups * inv.spec.fabric.spines
    for i in (0, 17, len(uplinks) - 1):
        assert inv.uplink_index(uplinks[i]) == i
    for bad in ("leaf-r8-g0/spine0", "leaf-r0-g0/spine16", "spine3", "su1-0000-n00/nic0"):
        with pytest.raises(KeyError):
            inv.uplink_index(bad)


def test_gpu_to_node_mapping_is_consistent():
    inv = build_inventory(load_facility_spec("gb200-nvl72-hall"))
    assert inv.gpu_node[:8].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert inv.gpu_local_index[:6].tolist() == [0, 1, 2, 3, 0, 1]
    assert (inv.node_first_gpu[inv.gpu_node] + inv.gpu_local_index == np.arange(inv.n_gpus)).all()


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["node_types"]["dgx-h100"].update(gpu_model="H200"), "unknown GPU model 'H200'"),
    (lambda d: d["rack_types"]["dgx4"].update(node_type="dgx-b200"), "unknown node type 'dgx-b200'"),
    (lambda d: d["halls"][0]["rows"].append({"id": "su1", "rack_type": "dgx4", "count": 1}), "must be unique"),
    (lambda d: d["halls"][0]["rows"][0].update(rack_type="nvl72"), "unknown 'nvl72'"),
    (lambda d: d["gpu_models"]["H100-SXM"].update(idle_w=800), "idle_w < max_w"),
    (lambda d: d["fabric"].update(oversubscription=0.5), "greater than or equal to 1"),
    (lambda d: d["cooling"].update(facility_supply_temp_c=60), "less than or equal to 45"),
    (lambda d: d.update(colour="blue"), "Extra inputs are not permitted"),
])
def test_invalid_specs_are_rejected_with_the_reason(mutate, message):
    d = spec_dict()
    mutate(d)
    with pytest.raises(ValidationError, match=message):
        FacilitySpec.model_validate(d)


def test_unknown_facility_name_says_what_exists(tmp_path):
    with pytest.raises(ValueError, match="neither a preset .*dgx-h100-su.* nor a file"):
        load_facility_spec("no-such-site")
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(spec_dict()))
    assert load_facility_spec(str(path)).site_id == "su-h100"


# --- power chain (issue 9) -------------------------------------------------------------------------
from twin.core.facility.power import (  # noqa: E402
    ConversionStage,
    doe_transformer,
    generated_topology,
    rack_nameplate_w,
    resolved_topology,
)


def explicit_power(**over) -> dict:
    topo = {
        "transformers": [{"id": "tx-1", "rating_kva": 1000, "no_load_loss_w": 1000, "load_loss_w": 9000,
                          "inputs": ["feed-a"]}],
        "ups": [{"id": f"ups-{i}", "rating_kw": 250, "inputs": ["tx-1"],
                 "efficiency": {"name": "ups", "kind": "loss_polynomial", "rated_w": 250000,
                                "loss_coefficients": [0.016, 0.016, 0.008]}} for i in (1, 2, 3)],
        "ups_groups": [{"id": "bus", "redundancy": "N+1", "members": ["ups-1", "ups-2", "ups-3"]}],
        "pdus": [{"id": f"pdu-{i}", "rating_kw": 50, "inputs": ["bus"], "racks": [f"su1-{i:04d}"]} for i in range(8)],
    }
    topo.update(over)
    return {"utility_feeds": [{"id": "feed-a", "capacity_mw": 1.0, "max_ramp_mw_per_min": 0.5}],
            "on_site": [{"id": "bess", "kind": "battery", "capacity_mw": 0.2, "energy_mwh": 0.1}], "topology": topo}


def test_count_presets_get_a_generated_chain():
    spec = load_facility_spec("site-100k")
    topo = resolved_topology(spec)
    assert spec.power.topology is None and topo == generated_topology(spec)
    assert (len(topo.transformers), len(topo.ups), len(topo.pdus)) == (8, 64, 3125)
    assert topo.ups_groups[0].redundancy == "N+1" and len(topo.ups_groups[0].members) == 64
    assert topo.pdus[7].racks == ["h1a-0007"] and topo.pdus[0].inputs == ["ups-bus"]
    assert [t.inputs for t in topo.transformers[:3]] == [["feed-a"], ["feed-b"], ["feed-a"]]


def test_doe_transformer_hits_its_efficiency_at_35_percent():
    t = doe_transformer("tx", 1000.0, ["f"])
    p = 0.35 * 1e6
    loss = t.no_load_loss_w + t.load_loss_w * 0.35**2
    assert p / (p + loss) == pytest.approx(0.9928)
    assert t.no_load_loss_w == pytest.approx(t.load_loss_w * 0.35**2)   # peak efficiency at the test point


def test_explicit_topology_loads_and_keeps_count_readers_working():
    d = spec_dict()
    d["power"] = explicit_power()
    spec = FacilitySpec.model_validate(d)
    assert spec.power.pdu_kw == 50 and spec.power.utility_feeds[0].max_ramp_mw_per_min == 0.5
    assert resolved_topology(spec).ups_groups[0].members == ["ups-1", "ups-2", "ups-3"]
    assert spec.power.on_site[0].effective_start_delay_s == 0.0


def test_rack_nameplate_goes_through_rack_stages():
    spec = load_facility_spec("gb200-nvl72-hall")
    nameplate = rack_nameplate_w(spec, "nvl72")
    assert 18 * 6300 < nameplate < 18 * 6300 / 0.94


@pytest.mark.parametrize(("power", "message"), [
    (explicit_power(pdus=[{"id": f"pdu-{i}", "rating_kw": 50, "inputs": ["bus"], "racks": [f"su1-{i:04d}"]}
                          for i in range(7)]), r"rack su1-0007 \(row su1\) has no power path"),
    (explicit_power(pdus=[{"id": "pdu-0", "rating_kw": 50, "inputs": ["bus-x"], "racks": ["row:su1"]}]),
     r"pdus\.pdu-0: dangling reference 'bus-x'"),
    (explicit_power(transformers=[{"id": "tx-1", "rating_kva": 1000, "no_load_loss_w": 0, "load_loss_w": 0,
                                   "inputs": ["feed-z"]}]), r"transformers\.tx-1: dangling reference 'feed-z'"),
    (explicit_power(pdus=[{"id": "pdu-0", "rating_kw": 50, "inputs": ["bus"], "racks": ["row:su9"]}]),
     r"pdus\.pdu-0\.racks: unknown row 'su9'"),
    (explicit_power(pdus=[{"id": "pdu-0", "rating_kw": 50, "inputs": ["bus"], "racks": ["row:su1"]}]),
     r"pdus\.pdu-0: carries 326\.4 kW at nameplate, above its rating 50\.0 kW \(path rack su1-0000 -> pdu-0\)"),
    (explicit_power(ups_groups=[{"id": "bus", "redundancy": "N+1", "members": ["ups-1", "ups-2"]}],
                    ups=[{"id": f"ups-{i}", "rating_kw": 200, "inputs": ["tx-1"],
                          "efficiency": {"name": "u", "kind": "affine", "efficiency": 0.96}} for i in (1, 2)]),
     r"ups_groups\.bus: carries 326\.4 kW at nameplate with one member failed \(N\+1\), above its rating 200\.0 kW"),
    (explicit_power(pdus=[{"id": f"pdu-{i}", "rating_kw": 50, "inputs": ["bus"], "racks": [f"su1-{i:04d}", "su1-0000"]}
                          for i in range(8)]), "rack su1-0000 is on PDUs"),
    (explicit_power(transformers=[{"id": "pdu-1", "rating_kva": 1000, "no_load_loss_w": 0, "load_loss_w": 0,
                                   "inputs": ["feed-a"]}]), "ids must be unique across the chain, repeated: pdu-1 \\[type"),
])
def test_power_chain_validation_names_the_offending_path(power, message):
    d = spec_dict()
    d["power"] = power
    with pytest.raises(ValidationError, match=message):
        FacilitySpec.model_validate(d)


def test_feed_cap_is_checked_at_nameplate():
    d = spec_dict()
    d["power"]["utility_feeds"] = [{"id": "feed-a", "capacity_mw": 0.1}, {"id": "feed-b", "capacity_mw": 1.0}]
    with pytest.raises(ValidationError, match=r"utility_feeds\.feed-a: carries .* above its rating 100\.0 kW"):
        FacilitySpec.model_validate(d)


def test_count_form_needs_counts_or_a_topology():
    d = spec_dict()
    del d["power"]["ups_kw"]
    with pytest.raises(ValidationError, match="give either topology or the counts"):
        FacilitySpec.model_validate(d)


@pytest.mark.parametrize(("stage", "message"), [
    ({"name": "p", "kind": "curve", "rated_w": 100, "load_points": [0.5, 0.2], "efficiency_points": [0.9, 0.9]},
     "rising"),
    ({"name": "p", "kind": "curve", "load_points": [0.5], "efficiency_points": [0.9]}, "needs rated_w"),
    ({"name": "p", "kind": "affine", "efficiency": 1.5}, "less than or equal to 1"),
    ({"name": "p", "kind": "loss_polynomial", "rated_w": 1, "loss_coefficients": [0, -0.1, 0]}, "never negative"),
])
def test_bad_conversion_stages_are_rejected(stage, message):
    with pytest.raises(ValidationError, match=message):
        ConversionStage.model_validate(stage)


def test_genset_defaults_name_their_sources():
    spec = load_facility_spec("dgx-h100-su")
    g = spec.power.on_site[0]
    assert g.effective_start_delay_s == 10.0                     # NFPA 110 Type 10
    assert g.effective_ramp_mw_per_min == pytest.approx(0.8)     # rating per minute


# --- cooling topology (issue 10) -------------------------------------------------------------------
from twin.core.facility.cooling import (  # noqa: E402
    COOLANTS,
    generated_cooling,
    resolved_cooling,
)


def test_count_presets_get_a_generated_cooling_topology():
    spec = load_facility_spec("gb200-nvl72-hall")
    topo = resolved_cooling(spec)
    assert spec.cooling.topology is None and topo == generated_cooling(spec)
    assert [(g.id, g.redundancy, len(g.members), g.racks) for g in topo.cdu_groups] == [
        ("loop-a", "N+1", 2, ["row:a"]), ("loop-b", "N+1", 2, ["row:b"])]
    assert topo.rack_cooling["nvl72"].flow_lpm == 250.0          # 2,000 L/min CDU over 8 racks
    assert [u.kind for u in topo.plant] == ["cooling_tower"] * 4      # W32: towers (see the preset)
    assert sum(u.capacity_kw for u in topo.plant) == pytest.approx(2400.0)
    air = resolved_cooling(load_facility_spec("site-100k"))
    assert not air.cdus and len(air.crah_groups) == 5            # rear-door racks: all heat to air, per hall


def test_coolant_properties_are_data():
    water, pg = COOLANTS["water"], COOLANTS["pg25"]
    assert water.cp_at(20.0) == pytest.approx(4184.0) and water.density_at(20.0) == pytest.approx(998.21)
    assert water.cp_at(25.0) == pytest.approx(4182.0)            # linear between table points
    assert pg.cp_at(20.0) < water.cp_at(20.0) and pg.density_at(20.0) > water.density_at(20.0)


def explicit_cooling(**over) -> dict:
    topo = {
        "plant": [{"id": "tower-1", "kind": "cooling_tower", "capacity_kw": 800, "approach_k": 4,
                   "fan_kw": 10}],
        "crahs": [{"id": f"crah-{i}", "capacity_kw": 150, "supply_air_temp_c": 22, "fan_kw": 4}
                  for i in (1, 2, 3, 4)],
        "crah_groups": [{"id": "air", "redundancy": "N+1",
                         "members": ["crah-1", "crah-2", "crah-3", "crah-4"],
                         "racks": ["row:su1"]}],
    }
    topo.update(over)
    d = spec_dict()
    d["cooling"]["topology"] = topo
    return d


def test_explicit_cooling_topology_loads():
    spec = FacilitySpec.model_validate(explicit_cooling())
    topo = resolved_cooling(spec)
    assert [c.id for c in topo.crahs] == ["crah-1", "crah-2", "crah-3", "crah-4"]
    assert topo.rack_cooling["dgx4"].gpu_k_per_w == pytest.approx(0.044)   # filled from defaults


def _liquid_su(d: dict) -> dict:
    d["rack_types"]["dgx4"].update(cooling="liquid", liquid_fraction=0.8)
    return d


@pytest.mark.parametrize(("make", "message"), [
    (lambda: explicit_cooling(crah_groups=[{"id": "air", "redundancy": "N", "members": ["crah-9"],
                                            "racks": ["row:su1"]}]),
     r"crah_groups\.air: dangling reference 'crah-9' \(not a CRAH\)"),
    (lambda: explicit_cooling(crah_groups=[{"id": "air", "redundancy": "N", "members": ["crah-1"],
                                            "racks": ["row:su9"]}]),
     r"crah_groups\.air\.racks: unknown row 'su9'"),
    (lambda: explicit_cooling(crah_groups=[{"id": "air", "redundancy": "N", "members": ["crah-1"],
                                            "racks": ["su1-0000"]}]),
     r"rack su1-0001 \(row su1\) sends 40\.8 kW to air but no crah_groups lists it"),
    (lambda: explicit_cooling(crah_groups=[{"id": "air", "redundancy": "N+1", "members": ["crah-1", "crah-2"],
                                            "racks": ["row:su1"]}]),
     r"crah_groups\.air: needs 326\.4 kW of heat at nameplate, above the 150\.0 kW its members give with its "
     r"largest member failed \(N\+1\)"),
    (lambda: explicit_cooling(plant=[{"id": "t", "kind": "cooling_tower", "capacity_kw": 100,
                                      "approach_k": 4}]),
     r"plant: rejects 100 kW, below the .* kW of heat at nameplate"),
    (lambda: explicit_cooling(plant=[{"id": "c", "kind": "chiller", "capacity_kw": 900, "approach_k": 6}]),
     "a chiller needs cop"),
    (lambda: explicit_cooling(rack_cooling={"dgx9": {"air_limit_kw": 50, "gpu_k_per_w": 0.04}}),
     r"rack_cooling\.dgx9: unknown rack type"),
    (lambda: explicit_cooling(rack_cooling={"dgx4": {"air_limit_kw": 20, "gpu_k_per_w": 0.04}}),
     r"rack_cooling\.dgx4: 40\.8 kW to air at nameplate, above the air limit 20\.0 kW"),
    (lambda: _liquid_su(explicit_cooling()), r"liquid rack su1-0000 \(row su1\) has no CDU loop"),
    (lambda: _liquid_su(explicit_cooling(
        cdus=[{"id": f"cdu-{i}", "capacity_kw": 200, "flow_lpm": 600, "pump_kw": 3} for i in (1, 2)],
        cdu_groups=[{"id": "loop", "redundancy": "N+1", "members": ["cdu-1", "cdu-2"],
                     "racks": ["row:su1"]}])),
     r"cdu_groups\.loop: needs 261\.1 kW of heat at nameplate, above the 200\.0 kW"),
    (lambda: explicit_cooling(crahs=[{"id": "air", "capacity_kw": 150, "supply_air_temp_c": 22, "fan_kw": 4}],
                              crah_groups=[{"id": "air", "redundancy": "N", "members": ["air"],
                                            "racks": ["row:su1"]}]), "ids must be unique, repeated: air \\[type"),
    (lambda: {**spec_dict(), "cooling": {**spec_dict()["cooling"], "coolant": "brine"}},
     "unknown coolant 'brine'"),
    (lambda: explicit_cooling(plant=[{"id": "t", "kind": "cooling_tower", "capacity_kw": 800, "approach_k": 4,
                                      "fan_curve": {"points": [1.0, 0.5], "power_fraction": [1.0, 0.2]}}]),
     "points must be >= 0 and rising"),
])
def test_cooling_validation_names_the_offending_path(make, message):
    with pytest.raises(ValidationError, match=message):
        FacilitySpec.model_validate(make())
