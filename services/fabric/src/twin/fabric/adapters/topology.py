"""Facility spec + inventory → the fabric core's inputs, and link ids ↔ link-state slots.

Link slots (see twin.fabric.domain.link_health): slots [0, n_uplinks) are the leaf-spine uplinks in
`Inventory.uplink_ids()` order (`leaf-r<rail>-g<group>/spine<S>`, index
`(group * rails + rail) * spines + S`); slots [n_uplinks, n_uplinks + n_nodes * rails) are NICs
`<node>/nic<K>` at `n_uplinks + node * rails + K`. Leaf index = `group * rails + rail`.

Event ids may also name a switch: a leaf (`leaf-r<rail>-g<group>`: all its uplinks) or a spine
(`spine<S>`: that spine's uplink from every leaf).

Counter ports: `<node>/nic<K>` is a NIC port, `<leaf>/spine<S>` a leaf's uplink port (switch
counters). Each port's counters set its own link's utilization (NIC traffic is not spread onto the
uplinks: it is the jobs' own traffic, see twin.fabric.domain.link_health.utilization_from_rates).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from twin.core.facility import Inventory
from twin.fabric.domain.link_health import LinkLayout

GBPS_TO_BYTES_PER_S = 1e9 / 8


class UnknownLink(KeyError):
    """A link, port or switch id that is not part of the facility."""

    def __str__(self) -> str:  # KeyError quotes its message; keep reasons readable
        return str(self.args[0]) if self.args else "unknown link"


@dataclass(frozen=True)
class LinkIndex:
    """Id ↔ slot mapping over one inventory's scale-out fabric."""

    inventory: Inventory

    @cached_property
    def rails(self) -> int:
        return self.inventory.rails

    @cached_property
    def spines(self) -> int:
        return self.inventory.spec.fabric.spines

    @cached_property
    def n_leaves(self) -> int:
        return self.inventory.n_leaf_groups * self.rails

    @cached_property
    def n_uplinks(self) -> int:
        return self.n_leaves * self.spines

    @cached_property
    def n_nics(self) -> int:
        return self.inventory.n_nodes * self.rails

    @property
    def n_links(self) -> int:
        return self.n_uplinks + self.n_nics

    @cached_property
    def node_nics(self) -> np.ndarray:
        """NICs per node (nodes may have fewer NICs than the fabric has rails)."""
        inv = self.inventory
        return np.array([inv.node_type_of_rack(r).nics for r in inv.racks for _ in range(r.nodes)], dtype=np.int64)

    @cached_property
    def nic_exists(self) -> np.ndarray:
        return (np.arange(self.rails)[None, :] < self.node_nics[:, None]).reshape(-1)

    @cached_property
    def nic_leaf(self) -> np.ndarray:
        group = np.repeat(self.inventory.node_leaf_group, self.rails)
        rail = np.tile(np.arange(self.rails), self.inventory.n_nodes)
        return (group * self.rails + rail).astype(np.int64)

    @cached_property
    def uplink_leaf(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_leaves), self.spines)

    @cached_property
    def _node_ids(self) -> list[str]:
        inv = self.inventory
        return [nid for r in inv.racks for nid in inv.node_ids(r)]

    @cached_property
    def _cache(self) -> dict[str, np.ndarray]:
        return {}

    # -- ids -> slots ---------------------------------------------------------------------------
    def link_id(self, slot: int) -> str:
        slot = int(slot)
        if 0 <= slot < self.n_uplinks:
            leaf, s = divmod(slot, self.spines)
            group, rail = divmod(leaf, self.rails)
            return f"leaf-r{rail}-g{group}/spine{s}"
        if self.n_uplinks <= slot < self.n_links:
            node, k = divmod(slot - self.n_uplinks, self.rails)
            return f"{self._node_ids[node]}/nic{k}"
        raise UnknownLink(f"slot {slot} out of range")

    def slots(self, link_id: str) -> np.ndarray:
        """Slots an event id names: one uplink or NIC, or every uplink of a leaf or spine."""
        hit = self._cache.get(link_id)
        if hit is not None:
            return hit
        found = self._resolve(link_id)
        if len(self._cache) < 1_000_000:
            self._cache[link_id] = found
        return found

    def port_slot(self, port_id: str) -> int:
        """The slot of a counter port (a NIC or an uplink port); raises UnknownLink otherwise."""
        found = self.slots(port_id)
        if found.size != 1 or "/" not in port_id:
            raise UnknownLink(f"not a NIC or uplink port: {port_id!r}")
        return int(found[0])

    def _resolve(self, link_id: str) -> np.ndarray:
        inv = self.inventory
        if link_id.startswith("leaf-r") and "/spine" in link_id:
            try:
                return np.array([inv.uplink_index(link_id)], dtype=np.int64)
            except KeyError as exc:
                raise UnknownLink(f"unknown uplink {link_id!r}") from exc
        if link_id.startswith("leaf-r"):
            try:
                rail_s, group_s = link_id.removeprefix("leaf-r").split("-g")
                rail, group = int(rail_s), int(group_s)
            except ValueError as exc:
                raise UnknownLink(f"not a link id: {link_id!r}") from exc
            if not (0 <= rail < self.rails and 0 <= group < inv.n_leaf_groups):
                raise UnknownLink(f"unknown leaf {link_id!r}")
            leaf = group * self.rails + rail
            return np.arange(leaf * self.spines, (leaf + 1) * self.spines, dtype=np.int64)
        if link_id.startswith("spine"):
            try:
                s = int(link_id.removeprefix("spine"))
            except ValueError as exc:
                raise UnknownLink(f"not a link id: {link_id!r}") from exc
            if not 0 <= s < self.spines:
                raise UnknownLink(f"unknown spine {link_id!r}")
            return np.arange(self.n_leaves, dtype=np.int64) * self.spines + s
        node_id, sep, nic = link_id.rpartition("/nic")
        if sep and nic.isdigit():
            node = inv.node_index.get(node_id)
            k = int(nic)
            if node is None or k >= int(self.node_nics[node]):
                raise UnknownLink(f"unknown NIC {link_id!r}")
            return np.array([self.n_uplinks + node * self.rails + k], dtype=np.int64)
        raise UnknownLink(f"unknown link id {link_id!r}")

    # -- link-state layout ----------------------------------------------------------------------
    def layout(self) -> LinkLayout:
        f = self.inventory.spec.fabric
        return LinkLayout(
            n_uplinks=self.n_uplinks, n_nics=self.n_nics, uplink_leaf=self.uplink_leaf, nic_leaf=self.nic_leaf,
            uplink_bytes_per_s=f.leaf_uplink_gbps * GBPS_TO_BYTES_PER_S,
            nic_bytes_per_s=f.nic_gbps * GBPS_TO_BYTES_PER_S,
        )


# -- spec → core topology -------------------------------------------------------------------------


class UnsupportedFacility(ValueError):
    """The facility cannot be expressed as one core FabricTopology."""


def fabric_topology(inventory: Inventory):
    """The core `FabricTopology` of a facility (homogeneous GPU nodes required).

    Mapping: n_gpus and gpus_per_node from the inventory (GPU ids are node-major in both, so global
    GPU ids mean the same thing on the wire and in the core); NVLink from the GPU model's generation
    with the spec's raw per-GPU NVLink bandwidth scaled by the core's payload efficiency; scale-out from
    `spec.fabric` (kind, NIC line rate, NICs per GPU, nodes per leaf, spines, oversubscription,
    switch hop latency, the jobs' NCCL_BUFFSIZE when stated). `nic_latency_s` is not passed on: NCCL's network base latency the core uses
    already contains the NIC's share.
    """
    from dataclasses import replace

    from twin.fabric.domain.systems import gpu_of
    from twin.fabric.domain.topology import (
        NVLINK_PAYLOAD_EFFICIENCY,
        FabricTopology,
        efa,
        infiniband,
        inter_domain_nics,
        nvlink,
        roce,
    )

    spec = inventory.spec
    node_types = {inventory.rack_type(r).node_type for r in inventory.racks}
    if len(node_types) != 1:
        raise UnsupportedFacility(f"facility {spec.site_id!r} mixes node types {sorted(node_types)}; "
                                  "the fabric core models one GPU node type per facility")
    nt = spec.node_types[node_types.pop()]
    gpu = spec.gpu_models[nt.gpu_model]
    if nt.nics and nt.nics % nt.gpus and nt.gpus % nt.nics:
        raise UnsupportedFacility(f"nics={nt.nics} per node must be a multiple or divisor of gpus={nt.gpus}")
    up = nvlink(gpu.nvlink_generation if gpu.nvlink_generation <= 5 else 5, nt.nvlink_domain_gpus, nvls=nt.nvls)
    family = gpu_of(nt.gpu_model)
    up = replace(up, nvlink_bw_GBps_per_gpu=gpu.nvlink_bw_GBps * NVLINK_PAYLOAD_EFFICIENCY,
                 inter_domain_nics=inter_domain_nics(family or "", nt.nvlink_domain_gpus, nt.gpus))
    f = spec.fabric
    builder = {"infiniband": infiniband, "roce": roce, "efa": efa}[f.kind]
    out = builder(f.nic_gbps, nt.nics / nt.gpus if nt.nics else 1.0, nodes_per_leaf=f.nodes_per_leaf,
                  n_spines=f.spines, oversubscription=f.oversubscription, per_hop_latency_s=f.switch_latency_s)
    if f.nccl_buffsize_bytes is not None:
        out = replace(out, nccl_buffsize_bytes=float(f.nccl_buffsize_bytes))
    # Grace-Blackwell superchips (GB200/GB300) run NCCL's proxy on the Grace (Arm) host; the facility spec has no
    # CPU field otherwise, so other nodes take NCCL's default (Intel-equivalent) proxy overhead.
    host_cpu = "arm" if family in ("gb200", "gb300") else "intel"
    return FabricTopology(name=spec.site_id, n_gpus=inventory.n_gpus, gpus_per_node=nt.gpus, scale_up=up,
                          scale_out=out, notes=spec.description, host_cpu=host_cpu)


def nic_gpu_map(index: LinkIndex, gpus_per_node: int) -> tuple[np.ndarray, np.ndarray]:
    """(gpu id, NIC slot) pairs: which NIC slots serve which GPU (NIC k of a node serves GPU-local
    k * gpus // nics when there are more NICs than GPUs, GPU j uses NIC j * nics // gpus otherwise)."""
    inv = index.inventory
    nics = int(index.node_nics.max()) if index.node_nics.size else 0
    if nics == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    node = np.arange(inv.n_nodes)
    if nics >= gpus_per_node:
        k = np.arange(nics)
        local_gpu = k * gpus_per_node // nics
        gpu = (node[:, None] * gpus_per_node + local_gpu[None, :]).reshape(-1)
        slot = (index.n_uplinks + node[:, None] * index.rails + k[None, :]).reshape(-1)
    else:
        j = np.arange(gpus_per_node)
        k = j * nics // gpus_per_node
        gpu = (node[:, None] * gpus_per_node + j[None, :]).reshape(-1)
        slot = (index.n_uplinks + node[:, None] * index.rails + k[None, :]).reshape(-1)
    return gpu.astype(np.int64), slot.astype(np.int64)


def check_compatible(index: LinkIndex, topology) -> None:
    """The link slots and the core's uplink arrays must describe the same leaves and spines."""
    if topology.scale_out is None:
        return
    if (topology.n_leaves, topology.n_spines) != (index.n_leaves, index.spines):
        raise UnsupportedFacility(
            f"core topology has {topology.n_leaves} leaves x {topology.n_spines} spines but the inventory "
            f"{index.n_leaves} x {index.spines} (rails = NICs per node must equal GPUs per node)")


def core_link_state(index: LinkIndex, topology, health):
    """The core `LinkState` for a `LinkHealth`: effective uplink capacity (flapping penalised) and
    utilization as [n_leaves, n_spines]; NIC health per GPU = mean effective capacity of its NICs."""
    from twin.fabric.domain.state import LinkState

    check_compatible(index, topology)
    cap = health.effective_capacity()
    shape = (topology.n_leaves, topology.n_spines)
    up_cap = cap[: index.n_uplinks].reshape(shape)
    up_util = health.utilization[: index.n_uplinks].reshape(shape)
    gpu, slot = _nic_gpu_cached(index, topology.gpus_per_node)
    nic = np.ones(topology.n_gpus)
    if gpu.size:
        total = np.bincount(gpu, weights=cap[slot], minlength=topology.n_gpus)
        count = np.bincount(gpu, minlength=topology.n_gpus)
        nic = np.where(count > 0, total / np.maximum(count, 1), 1.0)
    return LinkState(up_cap, up_util, np.clip(nic, 0.0, 1.0))


def _nic_gpu_cached(index: LinkIndex, gpus_per_node: int) -> tuple[np.ndarray, np.ndarray]:
    cache = index.__dict__.setdefault("_nic_gpu", {})
    if gpus_per_node not in cache:
        cache[gpus_per_node] = nic_gpu_map(index, gpus_per_node)
    return cache[gpus_per_node]
