"""Placement summaries: what the cost model needs to know about a group of ranks.

A communicator's cost depends on how many ranks it has, how they sit in NVLink domains (the
smallest domain share ``ranks_per_domain`` is the bottleneck for hierarchical algorithms), how many
domains / nodes / leaf groups it spans, how crowded the busiest leaf group is, and the live state of
the NICs and leaf->spine uplinks it uses. All fields are numpy arrays of one common (broadcastable)
shape, so a batch of placements is one ``Placement``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .state import LinkState
from .topology import FabricTopology

_INT_FIELDS = ("n_ranks", "n_nodes", "n_domains", "ranks_per_domain", "n_leaf_groups", "max_nodes_per_leaf_group")


@dataclass(frozen=True, eq=False)
class Placement:
    """Arrays (one element per placement).

    n_ranks: ranks in the communicator; n_nodes: hosts spanned; n_domains: NVLink domains spanned;
    ranks_per_domain: fewest ranks in any spanned domain; n_leaf_groups: leaf groups spanned;
    max_nodes_per_leaf_group: most of the job's nodes under one leaf group (uplink sharing);
    nic_fraction: worst node's usable share of its NIC bandwidth (live state, 1 = healthy);
    spine_fraction: worst involved leaf's available share of its nominal uplink bandwidth.
    """

    n_ranks: np.ndarray
    n_nodes: np.ndarray
    n_domains: np.ndarray
    ranks_per_domain: np.ndarray
    n_leaf_groups: np.ndarray
    max_nodes_per_leaf_group: np.ndarray
    nic_fraction: np.ndarray
    spine_fraction: np.ndarray

    def __post_init__(self) -> None:
        arrays = {}
        for f in fields(self):
            dtype = np.int64 if f.name in _INT_FIELDS else np.float64
            arrays[f.name] = np.asarray(getattr(self, f.name), dtype=dtype)
        shaped = np.broadcast_arrays(*arrays.values())
        for name, a in zip(arrays, shaped, strict=True):
            object.__setattr__(self, name, a)
        if (self.n_ranks < 1).any():
            raise ValueError("n_ranks must be >= 1 (a communicator needs at least one rank)")
        if (self.n_domains < 1).any() or (self.ranks_per_domain < 1).any() or (self.n_nodes < 1).any():
            raise ValueError("n_nodes, n_domains and ranks_per_domain must be >= 1")
        if (self.ranks_per_domain * self.n_domains > self.n_ranks).any():
            raise ValueError("ranks_per_domain * n_domains cannot exceed n_ranks")
        if (self.n_leaf_groups < 1).any() or (self.max_nodes_per_leaf_group < 1).any():
            raise ValueError("n_leaf_groups and max_nodes_per_leaf_group must be >= 1")
        for name in ("nic_fraction", "spine_fraction"):
            a = getattr(self, name)
            if np.isnan(a).any() or (a < 0).any() or (a > 1).any():
                raise ValueError(f"{name} must be in [0, 1]")

    @property
    def shape(self) -> tuple[int, ...]:
        return self.n_ranks.shape

    def __getitem__(self, index: object) -> Placement:
        return Placement(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def reshape(self, *shape: int) -> Placement:
        return Placement(**{f.name: getattr(self, f.name).reshape(*shape) for f in fields(self)})


def placement_arrays(topology: FabricTopology, n_ranks: np.ndarray | int, *, n_nodes: np.ndarray | int | None = None,
                     n_domains: np.ndarray | int | None = None, ranks_per_domain: np.ndarray | int | None = None,
                     n_leaf_groups: np.ndarray | int = 1, max_nodes_per_leaf_group: np.ndarray | int | None = None,
                     nic_fraction: np.ndarray | float = 1.0, spine_fraction: np.ndarray | float = 1.0) -> Placement:
    """A synthetic (summary-only) placement; unspecified fields assume ranks packed into full domains."""
    n = np.asarray(n_ranks, dtype=np.int64)
    if (n < 1).any():
        raise ValueError("n_ranks must be >= 1")
    if (n > topology.n_gpus).any():
        raise ValueError(f"n_ranks exceeds the {topology.n_gpus} GPUs of topology {topology.name!r}")
    gpd = topology.scale_up.gpus_per_domain
    if n_domains is None:
        n_domains = -(-n // gpd)
    d = np.asarray(n_domains, dtype=np.int64)
    if ranks_per_domain is None:
        ranks_per_domain = n // np.maximum(d, 1)
    if n_nodes is None:
        n_nodes = -(-n // topology.gpus_per_node)
    nn = np.asarray(n_nodes, dtype=np.int64)
    if max_nodes_per_leaf_group is None:
        max_nodes_per_leaf_group = np.minimum(nn, topology.nodes_per_leaf)
    return Placement(n, nn, d, ranks_per_domain, n_leaf_groups, max_nodes_per_leaf_group, nic_fraction, spine_fraction)


def _per_row_runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """keys [P, n] sorted along axis 1 -> (run_row, run_start_flat, run_len) of equal-key runs per row."""
    p, n = keys.shape
    flat = keys.reshape(-1)
    change = np.empty(flat.shape, dtype=bool)
    change[0] = True
    change[1:] = flat[1:] != flat[:-1]
    change[::n] = True  # each row starts a run
    starts = np.flatnonzero(change)
    lengths = np.diff(np.append(starts, flat.size))
    return starts // n, starts, lengths


def placement_from_gpu_ids(topology: FabricTopology, gpu_ids: np.ndarray | list[int],
                           link_state: LinkState | None = None) -> Placement:
    """Summarise concrete GPU ids. ``gpu_ids`` is [n_ranks] (one placement) or [P, n_ranks] (a batch
    of equally sized placements). Live state (failed NICs/uplinks, utilization) enters here."""
    ids = np.asarray(gpu_ids)
    if ids.ndim == 0 or ids.size == 0:
        raise ValueError("gpu_ids must hold at least one GPU id (zero ranks)")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError("gpu_ids must be integers")
    single = ids.ndim == 1
    ids2 = (ids.reshape(1, -1) if single else ids.reshape(-1, ids.shape[-1])).astype(np.int64)
    if ids2.shape[1] > 1 and not (ids2[:, 1:] > ids2[:, :-1]).all():  # skip the sort when already ascending
        ids2 = np.sort(ids2, axis=1)
    p, n = ids2.shape
    if ids2[:, 0].min() < 0 or ids2[:, -1].max() >= topology.n_gpus:
        raise ValueError(f"gpu ids must be in [0, {topology.n_gpus}) for topology {topology.name!r}")
    if n > 1 and (np.diff(ids2, axis=1) == 0).any():
        raise ValueError("gpu_ids within a placement must be unique")
    if link_state is not None:
        link_state.check(topology)

    nodes = ids2 // topology.gpus_per_node
    node_row, node_start, node_len = _per_row_runs(nodes)
    n_nodes = np.bincount(node_row, minlength=p)

    doms = ids2 // topology.scale_up.gpus_per_domain
    dom_row, _, dom_len = _per_row_runs(doms)
    n_domains = np.bincount(dom_row, minlength=p)
    rpd = np.full(p, np.iinfo(np.int64).max)
    np.minimum.at(rpd, dom_row, dom_len)

    # leaf groups, and how many of this job's nodes share the busiest one
    node_ids = nodes.reshape(-1)[node_start]
    node_group = node_ids // topology.nodes_per_leaf
    key = node_row * (topology.n_leaf_groups + 1) + node_group
    change = np.empty(key.shape, dtype=bool)
    change[0] = True
    change[1:] = key[1:] != key[:-1]
    gstarts = np.flatnonzero(change)
    glen = np.diff(np.append(gstarts, key.size))
    grow = node_row[gstarts]
    n_groups = np.bincount(grow, minlength=p)
    kmax = np.zeros(p, dtype=np.int64)
    np.maximum.at(kmax, grow, glen)

    nic = np.ones(p)
    spine = np.ones(p)
    if link_state is not None and topology.scale_out is not None:
        health = link_state.nic_health[ids2].reshape(-1)
        node_mean = np.add.reduceat(health, node_start) / node_len
        np.minimum.at(nic, node_row, node_mean)
        leaf_avail = link_state.leaf_uplink_available()
        crossing = n_groups > 1
        if crossing.any():
            leaves = topology.leaf_of(ids2)
            np.minimum.at(spine, np.repeat(np.arange(p), n), leaf_avail[leaves].reshape(-1))
            spine = np.where(crossing, spine, 1.0)

    pl = Placement(np.full(p, n), n_nodes, n_domains, rpd, n_groups, kmax, nic, spine)
    return pl[0] if single else pl


def packed_gpu_ids(topology: FabricTopology, n_ranks: int, policy: str = "pack") -> np.ndarray:
    """GPU ids for a scheduler policy. ``pack``: lowest ids first (fills domains, then leaf groups).
    ``spread``: whole nodes taken round-robin across leaf groups (crosses the spine as early as possible)."""
    n = int(n_ranks)
    if n < 1:
        raise ValueError("n_ranks must be >= 1 (zero ranks)")
    if n > topology.n_gpus:
        raise ValueError(f"n_ranks={n} exceeds the {topology.n_gpus} GPUs of topology {topology.name!r}")
    if policy == "pack":
        return np.arange(n, dtype=np.int64)
    if policy != "spread":
        raise ValueError(f"policy must be 'pack' or 'spread', got {policy!r}")
    npl, groups = topology.nodes_per_leaf, topology.n_leaf_groups
    nodes = np.arange(topology.n_nodes)
    order = np.lexsort((nodes // npl, nodes % npl))  # slot within group first, then group
    n_node_needed = -(-n // topology.gpus_per_node)
    chosen = np.sort(nodes[order][:n_node_needed]) if groups > 1 else nodes[:n_node_needed]
    ids = (chosen[:, None] * topology.gpus_per_node + np.arange(topology.gpus_per_node)).reshape(-1)
    return ids[:n]


def placement_packed(topology: FabricTopology, n_ranks: int | np.ndarray, policy: str = "pack",
                     link_state: LinkState | None = None) -> Placement:
    """Placement of ``n_ranks`` (scalar or array) under a scheduler policy (see ``packed_gpu_ids``)."""
    arr = np.asarray(n_ranks)
    if arr.ndim == 0:
        return placement_from_gpu_ids(topology, packed_gpu_ids(topology, int(arr), policy), link_state)
    flat = [placement_from_gpu_ids(topology, packed_gpu_ids(topology, int(v), policy), link_state) for v in arr.reshape(-1)]
    return Placement(**{f.name: np.array([getattr(x, f.name) for x in flat]).reshape(arr.shape) for f in fields(Placement)})
