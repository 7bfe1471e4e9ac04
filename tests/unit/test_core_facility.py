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
