"""Facility spec -> the power domain's arrays (built once per spec; the domain itself never sees
pydantic or YAML). Component and rack ids are the facility spec's (twin.core.facility)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.core.facility import FacilitySpec, Inventory, build_inventory
from twin.core.facility.power import ConversionStage, resolved_topology
from twin.power.domain.conversion import Stage
from twin.power.domain.gpu import GpuPowerParams, default_params
from twin.power.domain.network import FEED, PDU, TRANSFORMER, UPS, UPS_GROUP, PowerNetwork
from twin.power.domain.node import NON_GPU_IDLE_SHARE, RackLayout
from twin.power.domain.planner import Sources


def stage_of(s: ConversionStage, rated_w: float | None = None) -> Stage:
    return Stage(name=s.name, kind=s.kind, units=s.units, constant_w=s.constant_w, efficiency=s.efficiency,
                 rated_w=float(rated_w if rated_w is not None else (s.rated_w or 1.0)),
                 load_points=tuple(s.load_points), efficiency_points=tuple(s.efficiency_points),
                 loss_coefficients=tuple(s.loss_coefficients))


@dataclass(frozen=True)
class SiteModel:
    spec: FacilitySpec
    inventory: Inventory
    network: PowerNetwork
    layout: RackLayout
    gpu: GpuPowerParams              # one entry per GPU
    sources: Sources


def build_network(spec: FacilitySpec, inv: Inventory) -> PowerNetwork:
    topo = resolved_topology(spec)
    ids: list[str] = []
    kind: list[int] = []
    rating: list[float] = []
    stage_ix: list[int] = []
    stages: list[Stage] = []

    def add(cid: str, k: int, r: float, st: Stage | None) -> None:
        ids.append(cid)
        kind.append(k)
        rating.append(r)
        if st is None:
            stage_ix.append(-1)
        else:
            if st not in stages:
                stages.append(st)
            stage_ix.append(stages.index(st))

    for p in topo.pdus:
        add(p.id, PDU, p.rating_kw * 1000.0, None)
    for g in topo.ups_groups:
        members = [u for u in topo.ups if u.id in g.members]
        add(g.id, UPS_GROUP, sum(u.rating_kw for u in members) * 1000.0, None)
    for u in topo.ups:
        add(u.id, UPS, u.rating_kw * 1000.0, stage_of(u.efficiency, rated_w=u.rating_kw * 1000.0 / u.efficiency.units))
    for t in topo.transformers:
        r = t.rating_kva * 1000.0
        add(t.id, TRANSFORMER, r, Stage(name=f"transformer {t.rating_kva:g} kVA", kind="loss_polynomial", rated_w=r,
                                        loss_coefficients=(t.no_load_loss_w / r, 0.0, t.load_loss_w / r)))
    for f in spec.power.utility_feeds:
        add(f.id, FEED, f.capacity_mw * 1e6, None)
    index = {cid: i for i, cid in enumerate(ids)}
    child, parent = [], []
    for p in topo.pdus:
        for ref in p.inputs:
            child.append(index[p.id])
            parent.append(index[ref])
    for g in topo.ups_groups:
        for m in g.members:
            child.append(index[g.id])
            parent.append(index[m])
    for u in topo.ups:
        for ref in u.inputs:
            child.append(index[u.id])
            parent.append(index[ref])
    for t in topo.transformers:
        for ref in t.inputs:
            child.append(index[t.id])
            parent.append(index[ref])
    by_row: dict[str, list[str]] = {}
    for r in inv.racks:
        by_row.setdefault(r.row_id, []).append(r.rack_id)
    re_rack, re_comp = [], []
    for p in topo.pdus:
        for sel in p.racks:
            racks = by_row[sel[4:]] if sel.startswith("row:") else [sel]
            for rid in racks:
                re_rack.append(inv.rack_index[rid])
                re_comp.append(index[p.id])
    fixed = np.zeros(len(ids))
    site_fixed = 0.0
    for s in topo.site_loads:
        w = s.power_kw * 1000.0 * s.count
        if s.input is None:
            site_fixed += w
        else:
            fixed[index[s.input]] += w
    ramps = np.array([f.max_ramp_mw_per_min * 1e6 / 60.0 if f.max_ramp_mw_per_min else np.inf
                      for f in spec.power.utility_feeds])
    return PowerNetwork(
        site_id=spec.site_id, rack_ids=tuple(r.rack_id for r in inv.racks), comp_ids=tuple(ids),
        comp_kind=np.array(kind), comp_rating_w=np.array(rating), comp_stage=np.array(stage_ix), stages=tuple(stages),
        rack_edge_rack=np.array(re_rack, dtype=np.int64), rack_edge_comp=np.array(re_comp, dtype=np.int64),
        edge_child=np.array(child, dtype=np.int64), edge_parent=np.array(parent, dtype=np.int64),
        comp_fixed_load_w=fixed, site_fixed_load_w=site_fixed,
        facility_stages=tuple(stage_of(s) for s in topo.facility_stages),
        group_redundancy={g.id: g.redundancy for g in topo.ups_groups}, feed_max_ramp_w_per_s=ramps)


def build_layout(spec: FacilitySpec, inv: Inventory) -> RackLayout:
    nt_names = list(spec.node_types)
    rt_names = list(spec.rack_types)
    cpu_idle, cpu_max, fixed, ntype = [], [], [], []
    for r in inv.racks:
        nt = spec.node_types[spec.rack_types[r.rack_type].node_type]
        if nt.power is not None:
            p = nt.power
            ci, cm = p.cpus * p.cpu_idle_w, p.cpus * p.cpu_max_w
            fx = p.memory_w + nt.nics * p.nic_w + p.storage_w + p.fans_and_platform_w
        else:
            ci, cm, fx = NON_GPU_IDLE_SHARE * nt.cpu_and_platform_w, nt.cpu_and_platform_w, 0.0
        cpu_idle += [ci] * r.nodes
        cpu_max += [cm] * r.nodes
        fixed += [fx] * r.nodes
        ntype += [nt_names.index(spec.rack_types[r.rack_type].node_type)] * r.nodes
    return RackLayout(
        gpu_node=inv.gpu_node, node_rack=inv.node_rack, node_cpu_idle_w=np.array(cpu_idle),
        node_cpu_max_w=np.array(cpu_max), node_fixed_w=np.array(fixed), node_type=np.array(ntype),
        node_chains=tuple(tuple(stage_of(s) for s in spec.node_types[n].conversion) for n in nt_names),
        rack_other_w=np.array([spec.rack_types[r.rack_type].other_loads_w for r in inv.racks]),
        rack_type=np.array([rt_names.index(r.rack_type) for r in inv.racks]),
        rack_chains=tuple(tuple(stage_of(s) for s in spec.rack_types[n].conversion) for n in rt_names))


def gpu_params_for_model(spec: FacilitySpec, name: str) -> GpuPowerParams:
    g = spec.gpu_models[name]
    return default_params(max_w=g.max_w, idle_w=g.idle_w, min_cap_w=g.min_cap_w, max_clock_mhz=g.max_sm_clock_mhz,
                          hbm_peak_TBps=g.hbm_bw_TBps, dense_tflops=g.dense_bf16_tflops,
                          idle_min_clock_w=g.idle_min_clock_w, idle_max_clock_w=g.idle_max_clock_w,
                          min_clock_mhz=g.min_sm_clock_mhz, sms=g.sms,
                          tensor_flops_per_clock_per_sm=g.tensor_flops_per_clock_per_sm)


def build_gpu_params(spec: FacilitySpec, inv: Inventory) -> GpuPowerParams:
    names = list(spec.gpu_models)
    per_model = [gpu_params_for_model(spec, n) for n in names]
    node_model = np.array([names.index(spec.node_types[spec.rack_types[r.rack_type].node_type].gpu_model)
                           for r in inv.racks for _ in range(r.nodes)])
    gpu_model = node_model[inv.gpu_node]
    stacked = GpuPowerParams(**{k: np.concatenate([getattr(p, k) for p in per_model]) for k in per_model[0].__dict__})
    return stacked.take(gpu_model)


def build_sources(spec: FacilitySpec) -> Sources:
    bats = [s for s in spec.power.on_site if s.kind == "battery"]
    gens = [s for s in spec.power.on_site if s.kind == "genset"]
    return Sources(
        battery_ids=tuple(b.id for b in bats), battery_power_w=np.array([b.capacity_mw * 1e6 for b in bats]),
        battery_energy_j=np.array([(b.energy_mwh or 0.0) * 3.6e9 for b in bats]),
        genset_ids=tuple(g.id for g in gens), genset_power_w=np.array([g.capacity_mw * 1e6 for g in gens]),
        genset_start_delay_s=np.array([g.effective_start_delay_s for g in gens]),
        genset_ramp_w_per_s=np.array([g.effective_ramp_mw_per_min * 1e6 / 60.0 for g in gens]))


def build_site_model(spec: FacilitySpec) -> SiteModel:
    inv = build_inventory(spec)
    return SiteModel(spec=spec, inventory=inv, network=build_network(spec, inv), layout=build_layout(spec, inv),
                     gpu=build_gpu_params(spec, inv), sources=build_sources(spec))
