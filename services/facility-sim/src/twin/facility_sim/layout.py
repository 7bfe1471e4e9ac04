"""Turn the facility spec's Inventory into the model's SiteArrays plus the ids used on the wire.

`racks` limits the simulation to the inventory's first N racks (tests, benchmarks, small demos).
A share of nodes runs with a lowered GPU power cap (operators cap power to fit a budget), so the
cap → clock-throttle behaviour is visible in every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.core.facility import inventory as inv_mod
from twin.core.facility.spec import FacilitySpec
from twin.facility_sim.domain.site import SiteArrays

CDU_APPROACH_K = 3.0   # secondary-loop supply sits this far above the facility water supply


@dataclass(frozen=True, eq=False)
class SiteLayout:
    spec: FacilitySpec
    site_id: str
    arrays: SiteArrays
    rack_ids: list[str]
    node_ids: list[str]          # per simulated node
    nic_ids: list[str]           # per simulated NIC ("<node>/nic<K>")
    gpu_model_names: list[str]   # per simulated node: the spec's GPU model key


def build_layout(
    spec: FacilitySpec, racks: int | None = None, capped_nodes: float = 0.10, cap_ratio: float = 0.70, seed: int = 0,
) -> SiteLayout:
    inventory = inv_mod.Inventory(spec)
    rack_infos = inventory.racks[: racks if racks else None]
    if not rack_infos:
        raise ValueError("no racks to simulate")
    gpu_idle, gpu_max, gpu_min_cap, gpu_sm, gpu_mem, gpu_node, gpu_local = [], [], [], [], [], [], []
    node_rack, node_first_gpu, node_gpus, node_platform, node_max, node_first_nic, node_nics = [], [], [], [], [], [], []
    rack_first, rack_nodes, rack_lf, rack_ph, rack_flow, rack_air, rack_cool = [], [], [], [], [], [], []
    nic_node, nic_rate, node_ids, nic_ids, model_names = [], [], [], [], []
    n_node = n_gpu = n_nic = 0
    per_rack_flow = spec.cooling.cdu_flow_lpm / spec.cooling.racks_per_cdu
    nic_bps = spec.fabric.nic_gbps * 1e9 / 8.0
    for r_idx, r in enumerate(rack_infos):
        rt = inventory.rack_type(r)
        nt = inventory.node_type_of_rack(r)
        gm = inventory.gpu_model_of_rack(r)
        rack_first.append(n_node)
        rack_nodes.append(r.nodes)
        rack_lf.append(rt.liquid_fraction)
        rack_ph.append(rt.pdu_phases)
        rack_flow.append(per_rack_flow if rt.liquid_fraction > 0 else 0.0)
        rack_air.append(spec.cooling.air_supply_temp_c)
        rack_cool.append(spec.cooling.facility_supply_temp_c + CDU_APPROACH_K)
        for nid in inventory.node_ids(r):
            node_ids.append(nid)
            model_names.append(nt.gpu_model)
            node_rack.append(r_idx)
            node_first_gpu.append(n_gpu)
            node_gpus.append(nt.gpus)
            node_platform.append(nt.cpu_and_platform_w)
            node_max.append(nt.max_w)
            node_first_nic.append(n_nic)
            node_nics.append(nt.nics)
            gpu_idle += [gm.idle_w] * nt.gpus
            gpu_max += [gm.max_w] * nt.gpus
            gpu_min_cap += [gm.min_cap_w] * nt.gpus
            gpu_sm += [gm.max_sm_clock_mhz] * nt.gpus
            gpu_mem += [gm.max_mem_clock_mhz] * nt.gpus
            gpu_node += [n_node] * nt.gpus
            gpu_local += list(range(nt.gpus))
            for k in range(nt.nics):
                nic_ids.append(f"{nid}/nic{k}")
                nic_node.append(n_node)
                nic_rate.append(nic_bps)
            n_node += 1
            n_gpu += nt.gpus
            n_nic += nt.nics
    f = np.asarray
    gpu_max_a = f(gpu_max, dtype=float)
    rng = np.random.default_rng([seed, 0xCA9])
    node_capped = rng.random(n_node) < capped_nodes
    gpu_node_a = f(gpu_node, dtype=np.int64)
    cap = np.where(node_capped[gpu_node_a], np.maximum(f(gpu_min_cap, dtype=float), cap_ratio * gpu_max_a), gpu_max_a)
    arrays = SiteArrays(
        gpu_node=gpu_node_a, gpu_local_index=f(gpu_local, dtype=np.uint32),
        gpu_idle_w=f(gpu_idle, dtype=float), gpu_max_w=gpu_max_a, gpu_cap_w=cap,
        gpu_max_sm_clock_mhz=f(gpu_sm, dtype=float), gpu_max_mem_clock_mhz=f(gpu_mem, dtype=float),
        node_rack=f(node_rack, dtype=np.int64), node_first_gpu=f(node_first_gpu, dtype=np.int64),
        node_gpus=f(node_gpus, dtype=np.int64), node_platform_w=f(node_platform, dtype=float),
        node_max_w=f(node_max, dtype=float), node_first_nic=f(node_first_nic, dtype=np.int64),
        node_nics=f(node_nics, dtype=np.int64),
        rack_first_node=f(rack_first, dtype=np.int64), rack_nodes=f(rack_nodes, dtype=np.int64),
        rack_liquid_fraction=f(rack_lf, dtype=float), rack_phases=f(rack_ph, dtype=np.int64),
        rack_coolant_flow_lpm=f(rack_flow, dtype=float), rack_air_supply_c=f(rack_air, dtype=float),
        rack_coolant_supply_c=f(rack_cool, dtype=float),
        nic_node=f(nic_node, dtype=np.int64), nic_bytes_per_s=f(nic_rate, dtype=float),
    )
    return SiteLayout(spec, spec.site_id, arrays, [r.rack_id for r in rack_infos], node_ids, nic_ids, model_names)
