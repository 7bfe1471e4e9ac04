"""The facility spec expanded into ids and index arrays: racks, nodes, GPUs, NICs, fabric links.

Naming (stable, used on the wire and in tables):
  rack  `<row>-<NNNN>`         node `<rack>-n<NN>`          GPU global id 0..n_gpus-1
  NIC   `<node>/nic<K>`         leaf `leaf-r<rail>-g<group>`  uplink `<leaf>/spine<S>`
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from twin.core.facility.spec import FacilitySpec, GpuModel, NodeType, RackType


@dataclass(frozen=True)
class RackInfo:
    rack_id: str
    row_id: str
    hall_id: str
    rack_type: str
    first_node: int  # global node index of the rack's first node
    nodes: int


class Inventory:
    def __init__(self, spec: FacilitySpec) -> None:
        self.spec = spec
        racks: list[RackInfo] = []
        node = 0
        for hall in spec.halls:
            for row in hall.rows:
                n_nodes = spec.rack_types[row.rack_type].nodes
                for i in range(row.count):
                    racks.append(RackInfo(f"{row.id}-{i:04d}", row.id, hall.id, row.rack_type, node, n_nodes))
                    node += n_nodes
        self.racks: tuple[RackInfo, ...] = tuple(racks)
        self.rack_index: dict[str, int] = {r.rack_id: i for i, r in enumerate(racks)}
        self.n_nodes = node
        gpus_per_node = np.array([self.node_type_of_rack(r).gpus for r in racks for _ in range(r.nodes)])
        self.node_rack = np.repeat(np.arange(len(racks)), [r.nodes for r in racks])
        self.node_first_gpu = np.concatenate([[0], np.cumsum(gpus_per_node)[:-1]]).astype(np.int64)
        self.node_gpus = gpus_per_node
        self.n_gpus = int(gpus_per_node.sum())
        self.gpu_node = np.repeat(np.arange(self.n_nodes), gpus_per_node)
        self.gpu_local_index = np.arange(self.n_gpus) - self.node_first_gpu[self.gpu_node]

    # -- spec lookups -------------------------------------------------------------------------
    def rack_type(self, rack: RackInfo) -> RackType:
        return self.spec.rack_types[rack.rack_type]

    def node_type_of_rack(self, rack: RackInfo) -> NodeType:
        return self.spec.node_types[self.rack_type(rack).node_type]

    def gpu_model_of_rack(self, rack: RackInfo) -> GpuModel:
        return self.spec.gpu_models[self.node_type_of_rack(rack).gpu_model]

    # -- ids ----------------------------------------------------------------------------------
    def node_ids(self, rack: RackInfo) -> list[str]:
        return [f"{rack.rack_id}-n{j:02d}" for j in range(rack.nodes)]

    @cached_property
    def node_index(self) -> dict[str, int]:
        return {nid: r.first_node + j for r in self.racks for j, nid in enumerate(self.node_ids(r))}

    def nic_ids(self, rack: RackInfo) -> list[str]:
        nics = self.node_type_of_rack(rack).nics
        return [f"{nid}/nic{k}" for nid in self.node_ids(rack) for k in range(nics)]

    # -- fabric -------------------------------------------------------------------------------
    @cached_property
    def gpu_nvlink_domain(self) -> np.ndarray:
        """NVLink domain index per GPU: the node for HGX, the whole rack for NVL72."""
        domain = np.empty(self.n_gpus, dtype=np.int64)
        next_domain = 0
        for r in self.racks:
            nt = self.node_type_of_rack(r)
            first = int(self.node_first_gpu[r.first_node])
            n = r.nodes * nt.gpus
            per = nt.nvlink_domain_gpus
            domain[first:first + n] = next_domain + np.arange(n) // per
            next_domain += -(-n // per)
        return domain

    @cached_property
    def rails(self) -> int:
        """NICs per node of the widest node type (one rail per NIC). Cached: leaf_ids() asks once per leaf, and
        recomputing it over every rack made building the site-100k id lists O(racks x leaves), ~2 s."""
        return max(self.node_type_of_rack(r).nics for r in self.racks)

    @cached_property
    def node_leaf_group(self) -> np.ndarray:
        """Rail-optimized leaf group per node: nodes_per_leaf consecutive nodes share each rail's leaf."""
        return np.arange(self.n_nodes) // self.spec.fabric.nodes_per_leaf

    @property
    def n_leaf_groups(self) -> int:
        return int(self.node_leaf_group[-1]) + 1

    def leaf_ids(self) -> list[str]:
        return [f"leaf-r{rail}-g{g}" for g in range(self.n_leaf_groups) for rail in range(self.rails)]

    def uplink_ids(self) -> list[str]:
        spines = self.spec.fabric.spines
        return [f"{leaf}/spine{s}" for leaf in self.leaf_ids() for s in range(spines)]

    def uplink_index(self, link_id: str) -> int:
        """Index into uplink_ids() without building the list (link ids arrive one by one)."""
        try:
            leaf, spine = link_id.split("/spine")
            rail_part, group_part = leaf.removeprefix("leaf-r").split("-g")
            rail, group, s = int(rail_part), int(group_part), int(spine)
        except ValueError as exc:
            raise KeyError(f"not an uplink id: {link_id!r}") from exc
        if not (0 <= rail < self.rails and 0 <= group < self.n_leaf_groups and 0 <= s < self.spec.fabric.spines):
            raise KeyError(f"unknown uplink: {link_id!r}")
        return (group * self.rails + rail) * self.spec.fabric.spines + s


def build_inventory(spec: FacilitySpec) -> Inventory:
    return Inventory(spec)
