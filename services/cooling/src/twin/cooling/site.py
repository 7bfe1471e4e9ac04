"""Facility spec -> the cooling domain's arrays (built once per spec; the domain never sees pydantic
or YAML). Ids are the facility spec's (twin.core.facility, twin.core.facility.cooling)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.cooling.domain.coolant import Coolant
from twin.cooling.domain.network import PLANT_KINDS, CoolingNetwork
from twin.cooling.domain.thermal import GpuThermal, default_thermal
from twin.cooling.domain.whatif import GpuLayout
from twin.core.facility import FacilitySpec, Inventory, build_inventory
from twin.core.facility.cooling import COOLANTS, expand_cooling_racks, resolved_cooling


def coolant_of(name: str) -> Coolant:
    c = COOLANTS[name]
    return Coolant(
        name=c.name,
        temps_c=np.array(c.temps_c),
        density_kg_m3=np.array(c.density_kg_m3),
        cp_j_per_kg_k=np.array(c.cp_j_per_kg_k),
    )


@dataclass(frozen=True)
class CoolingSite:
    spec: FacilitySpec
    inventory: Inventory
    network: CoolingNetwork
    gpu: GpuThermal  # one entry per GPU (spec defaults; calibration replaces them)
    gpus: GpuLayout  # rack, cooling, slowdown / HBM limits of the spec's GPU model


def build_network(spec: FacilitySpec, inv: Inventory) -> CoolingNetwork:
    topo = resolved_cooling(spec)
    c = spec.cooling
    rack_index = inv.rack_index
    n = len(inv.racks)
    rc = topo.rack_cooling
    lf = np.array([spec.rack_types[r.rack_type].liquid_fraction for r in inv.racks])
    loop = np.full(n, -1, dtype=np.int64)
    for gi, g in enumerate(topo.cdu_groups):
        for rid in expand_cooling_racks(g.racks, spec, g.id):
            loop[rack_index[rid]] = gi
    air = np.full(n, -1, dtype=np.int64)
    for gi, g in enumerate(topo.crah_groups):
        for rid in expand_cooling_racks(g.racks, spec, g.id):
            air[rack_index[rid]] = gi
    curves: list[tuple[tuple[float, ...], tuple[float, ...]]] = []

    def curve_ix(items, attr: str) -> np.ndarray:
        out = []
        for x in items:
            c = getattr(x, attr)
            if c is None:
                out.append(-1)
                continue
            key = (tuple(c.points), tuple(c.power_fraction))
            if key not in curves:
                curves.append(key)
            out.append(curves.index(key))
        return np.array(out, dtype=np.int64)

    cdu_curve, crah_curve = curve_ix(topo.cdus, "pump_curve"), curve_ix(topo.crahs, "fan_curve")
    fan_curve, comp_curve = curve_ix(topo.plant, "fan_curve"), curve_ix(topo.plant, "compressor_part_load")
    cdu_loop = {m: gi for gi, g in enumerate(topo.cdu_groups) for m in g.members}
    crah_group = {m: gi for gi, g in enumerate(topo.crah_groups) for m in g.members}
    a = np.array
    return CoolingNetwork(
        site_id=spec.site_id,
        rack_ids=tuple(r.rack_id for r in inv.racks),
        rack_liquid_fraction=lf,
        rack_flow_lpm=a([rc[r.rack_type].flow_lpm if lf[i] > 0 else 0.0 for i, r in enumerate(inv.racks)]),
        rack_coolant_l=a([rc[r.rack_type].coolant_volume_l for r in inv.racks]),
        rack_air_limit_w=a([rc[r.rack_type].air_limit_kw * 1000.0 for r in inv.racks]),
        rack_loop=np.where(lf > 0, loop, -1),
        rack_air_group=np.where(lf < 1, air, -1),
        loop_ids=tuple(g.id for g in topo.cdu_groups),
        loop_n_plus_1=a([g.redundancy == "N+1" for g in topo.cdu_groups], dtype=bool),
        loop_setpoint_c=a(
            [g.supply_temp_c if g.supply_temp_c is not None else np.nan for g in topo.cdu_groups], dtype=float
        ),
        cdu_ids=tuple(x.id for x in topo.cdus),
        cdu_loop=a([cdu_loop.get(x.id, -1) for x in topo.cdus], dtype=np.int64),
        cdu_capacity_w=a([x.capacity_kw * 1000.0 for x in topo.cdus]),
        cdu_flow_lpm=a([x.flow_lpm for x in topo.cdus]),
        cdu_pump_w=a([x.pump_kw * 1000.0 for x in topo.cdus]),
        cdu_approach_k=a([x.approach_k for x in topo.cdus]),
        air_group_ids=tuple(g.id for g in topo.crah_groups),
        air_group_n_plus_1=a([g.redundancy == "N+1" for g in topo.crah_groups], dtype=bool),
        crah_ids=tuple(x.id for x in topo.crahs),
        crah_group=a([crah_group.get(x.id, -1) for x in topo.crahs], dtype=np.int64),
        crah_capacity_w=a([x.capacity_kw * 1000.0 for x in topo.crahs]),
        crah_supply_c=a([x.supply_air_temp_c for x in topo.crahs]),
        crah_fan_w=a([x.fan_kw * 1000.0 for x in topo.crahs]),
        plant_ids=tuple(u.id for u in topo.plant),
        plant_kind=a([PLANT_KINDS.index(u.kind) for u in topo.plant]),
        plant_capacity_w=a([u.capacity_kw * 1000.0 for u in topo.plant]),
        plant_approach_k=a([u.approach_k for u in topo.plant]),
        plant_fan_w=a([u.fan_kw * 1000.0 for u in topo.plant]),
        plant_cop=a([u.cop if u.cop is not None else np.nan for u in topo.plant]),
        plant_economizer=a([u.economizer for u in topo.plant], dtype=bool),
        facility_pump_w=topo.facility_pump_kw * 1000.0,
        facility_supply_c=c.facility_supply_temp_c,
        design_dry_bulb_c=c.design_dry_bulb_c,
        design_wet_bulb_c=c.design_wet_bulb_c,
        facility_coolant=coolant_of(topo.facility_coolant),
        secondary_coolant=coolant_of(topo.secondary_coolant),
        curves=tuple((np.array(x), np.array(y)) for x, y in curves),
        cdu_pump_curve=cdu_curve,
        crah_fan_curve=crah_curve,
        plant_fan_curve=fan_curve,
        plant_compressor_curve=comp_curve,
    )


def build_cooling_site(spec: FacilitySpec) -> CoolingSite:
    inv = build_inventory(spec)
    net = build_network(spec, inv)
    rc = resolved_cooling(spec).rack_cooling
    gpu_rack = inv.node_rack[inv.gpu_node]
    rack_types = [r.rack_type for r in inv.racks]
    names = list(spec.rack_types)
    per_type = [rc[name] for name in names]
    type_of_rack = np.array([names.index(t) for t in rack_types])
    gt = type_of_rack[gpu_rack]
    r_total = np.array([p.gpu_k_per_w for p in per_type])[gt]
    fast = np.array([p.gpu_fast_share for p in per_type])[gt]
    models = [spec.gpu_models[spec.node_types[spec.rack_types[t].node_type].gpu_model] for t in rack_types]
    rack_slow = np.array([m.slowdown_temp_c for m in models])
    rack_hbm = np.array([m.hbm_max_temp_c for m in models])
    rack_bw = np.array([m.hbm_bw_TBps for m in models])
    gpu = default_thermal(
        r_total_k_per_w=r_total,
        fast_share=fast,
        tau_fast_s=np.array([p.gpu_fast_tau_s for p in per_type])[gt],
        tau_slow_s=np.array([p.gpu_slow_tau_s for p in per_type])[gt],
    )
    layout = GpuLayout(
        gpu_rack=gpu_rack,
        gpu_liquid=net.rack_liquid_fraction[gpu_rack] > 0,
        slowdown_c=rack_slow[gpu_rack],
        hbm_max_c=rack_hbm[gpu_rack],
        hbm_peak_TBps=rack_bw[gpu_rack],
    )
    return CoolingSite(spec=spec, inventory=inv, network=net, gpu=gpu, gpus=layout)
