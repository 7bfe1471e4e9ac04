"""Facility spec -> what the job twin needs of the site (built once per spec; the domain never sees pydantic).

* nodes: id -> global GPU ids, rack, leaf group, NVLink domain of each GPU (``twin.core.facility`` naming:
  node ``<rack>-n<NN>``, NIC ``<node>/nic<K>``, leaf ``leaf-r<rail>-g<group>``, uplink ``<leaf>/spine<S>``);
* which nodes a fabric link carries traffic for, and whether a job's placement crosses it: a NIC carries its
  node's scale-out traffic (a job spanning more than one NVLink domain uses it); a leaf, its uplinks and the
  spines carry traffic between leaf groups (a job whose nodes sit under more than one leaf group crosses them);
* the cooling group serving each rack and the racks each UPS feeds, for what-if failures.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from twin.core.facility import FacilitySpec, Inventory, build_inventory
from twin.jobs.domain.book import Facility


@dataclass(frozen=True)
class LinkScope:
    """Nodes a link concerns; ``cross_leaf``: it only matters to jobs spanning several leaf groups."""

    nodes: frozenset[int]
    cross_leaf: bool
    leaf: str = ""


@dataclass
class SiteMap:
    spec: FacilitySpec
    inventory: Inventory
    site_id: str
    node_index: dict[str, int]
    node_ids: list[str]
    rack_of_node: list[str]
    gpu_model_of_node: list[str]
    platform_w_per_gpu: list[float]        # node CPUs/platform power shared per GPU (energy accounting)
    cooling_group_of_rack: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # rack -> (id, redundancy, n)
    cdu_group: dict[str, str] = field(default_factory=dict)        # CDU id -> its group id
    cooling_group_racks: dict[str, list[str]] = field(default_factory=dict)
    ups_racks: dict[str, tuple[list[str], bool]] = field(default_factory=dict)  # UPS -> (racks, redundant)
    _placements: dict = field(default_factory=dict, repr=False)
    _gpu_ids: dict = field(default_factory=dict, repr=False)
    _platform_arr: np.ndarray | None = field(default=None, repr=False)   # platform_w_per_gpu as an array
    _rack_gpus: dict[str, int] | None = field(default=None, repr=False)

    @property
    def facility(self) -> Facility:
        return Facility(dict(zip(self.node_ids, (int(g) for g in self.inventory.node_gpus), strict=True)))

    def racks(self) -> list[str]:
        return [r.rack_id for r in self.inventory.racks]

    def rack_gpus(self, rack_id: str) -> int:
        """GPUs the rack holds (0: not a rack of this site)."""
        got = self._rack_gpus
        if got is None:
            inv = self.inventory
            per_rack = np.bincount(inv.node_rack, weights=inv.node_gpus, minlength=len(inv.racks))
            got = self._rack_gpus = {r.rack_id: int(per_rack[i]) for i, r in enumerate(inv.racks)}
        return got.get(rack_id, 0)

    def nodes_of_rack(self, rack_id: str) -> list[str]:
        rack = self.inventory.racks[self.inventory.rack_index[rack_id]]
        return self.inventory.node_ids(rack)

    def gpu_ids(self, nodes: Iterable[str], n_gpus: int) -> tuple[int, ...]:
        """Global GPU ids of a job: its GPUs spread evenly over its nodes (the remainder on the first nodes),
        the lowest local GPU indices of each node (schedulers bind GPUs in order)."""
        key = (tuple(nodes), n_gpus)
        hit = self._gpu_ids.get(key)
        if hit is not None:
            return hit
        if len(self._gpu_ids) > 20_000:
            self._gpu_ids.clear()
        self._gpu_ids[key] = out = self._derive_gpu_ids(key[0], n_gpus)
        return out

    def _derive_gpu_ids(self, nodes: tuple[str, ...], n_gpus: int) -> tuple[int, ...]:
        nodes = tuple(n for n in nodes if n in self.node_index)
        if not nodes or n_gpus <= 0:
            return ()
        q, r = divmod(n_gpus, len(nodes))
        inv = self.inventory
        out: list[int] = []
        for i, n in enumerate(nodes):
            k = self.node_index[n]
            want = min(q + (1 if i < r else 0), int(inv.node_gpus[k]))
            first = int(inv.node_first_gpu[k])
            out.extend(range(first, first + want))
        return tuple(out)

    def _placement(self, gpu_ids: Iterable[int]) -> tuple[frozenset[int], frozenset[str], float]:
        """(nodes, racks, platform watts) of a set of GPUs, cached per GPU tuple (a job asks every tick)."""
        key = gpu_ids if isinstance(gpu_ids, tuple) else tuple(gpu_ids)
        hit = self._placements.get(key)
        if hit is None:
            ids = np.asarray(key, dtype=np.int64)
            ids = ids[(ids >= 0) & (ids < self.inventory.n_gpus)]
            node_of = self.inventory.gpu_node[ids]
            nodes = frozenset(np.unique(node_of).tolist())
            platform = float(self._platform_array()[node_of].sum()) if ids.size else 0.0
            hit = (nodes, frozenset(self.rack_of_node[n] for n in nodes), platform)
            if len(self._placements) > 20_000:
                self._placements.clear()
            self._placements[key] = hit
        return hit

    def _platform_array(self) -> np.ndarray:
        arr = self._platform_arr
        if arr is None or arr.size != len(self.platform_w_per_gpu):
            arr = self._platform_arr = np.asarray(self.platform_w_per_gpu, dtype=float)
        return arr

    def nodes_of_gpus(self, gpu_ids: Iterable[int]) -> set[int]:
        return set(self._placement(gpu_ids)[0])

    def racks_of_gpus(self, gpu_ids: Iterable[int]) -> set[str]:
        return set(self._placement(gpu_ids)[1])

    def platform_w(self, gpu_ids: Iterable[int]) -> float:
        """The node CPU/platform power shared out to these GPUs."""
        return self._placement(gpu_ids)[2]

    def leaf_groups(self, node_idx: Iterable[int]) -> set[int]:
        lg = self.inventory.node_leaf_group
        return {int(lg[n]) for n in node_idx}

    def gpus_per_domain(self, gpu_ids: tuple[int, ...]) -> int:
        """Job GPUs sharing each NVLink domain (the smallest share: the collectives wait for it)."""
        if not gpu_ids:
            return 1
        _, counts = np.unique(self.inventory.gpu_nvlink_domain[np.asarray(gpu_ids)], return_counts=True)
        return int(counts.min())

    def spans_domains(self, gpu_ids: tuple[int, ...]) -> bool:
        if not gpu_ids:
            return False
        return np.unique(self.inventory.gpu_nvlink_domain[np.asarray(gpu_ids)]).size > 1

    def link_scope(self, link_id: str) -> LinkScope | None:
        """The nodes a fabric link id concerns (None: not a link of this facility)."""
        inv = self.inventory
        if "/nic" in link_id:
            node = link_id.split("/nic", 1)[0]
            k = self.node_index.get(node)
            return None if k is None else LinkScope(frozenset({k}), cross_leaf=False)
        if link_id.startswith("spine"):
            return LinkScope(frozenset(range(inv.n_nodes)), cross_leaf=True, leaf="")
        leaf = link_id.split("/spine", 1)[0]
        try:
            group = int(leaf.rsplit("-g", 1)[1])
        except (IndexError, ValueError):
            return None
        nodes = frozenset(np.flatnonzero(inv.node_leaf_group == group).tolist())
        return LinkScope(nodes, cross_leaf=True, leaf=leaf) if nodes else None

    def crosses(self, scope: LinkScope, job_nodes: set[int], job_gpus: tuple[int, ...]) -> bool:
        """Whether a job on these nodes sends traffic over the link."""
        if not scope.nodes & job_nodes:
            return False
        if scope.cross_leaf:
            return len(self.leaf_groups(job_nodes)) > 1
        return self.spans_domains(job_gpus)


def build_site_map(spec: FacilitySpec, site_id: str | None = None) -> SiteMap:
    inv = build_inventory(spec)
    node_ids: list[str] = []
    rack_of: list[str] = []
    model_of: list[str] = []
    platform: list[float] = []
    for rack in inv.racks:
        nt = inv.node_type_of_rack(rack)
        for nid in inv.node_ids(rack):
            node_ids.append(nid)
            rack_of.append(rack.rack_id)
            model_of.append(nt.gpu_model)
            platform.append(float(getattr(nt, "cpu_and_platform_w", 0.0) or 0.0) / max(nt.gpus, 1))
    site = SiteMap(spec, inv, site_id or spec.site_id, {n: i for i, n in enumerate(node_ids)}, node_ids, rack_of,
                   model_of, platform)
    _cooling(site)
    _ups(site)
    return site


def _cooling(site: SiteMap) -> None:
    try:
        from twin.core.facility.cooling import expand_cooling_racks, resolved_cooling

        topo = resolved_cooling(site.spec)
        for g in [*topo.cdu_groups, *topo.crah_groups]:
            racks = expand_cooling_racks(g.racks, site.spec, g.id)
            site.cooling_group_racks[g.id] = racks
            for m in g.members:
                site.cdu_group[m] = g.id
            for r in racks:
                # a rack served by a CDU loop counts that loop (liquid heat dominates); else its CRAH group
                if r not in site.cooling_group_of_rack or g in topo.cdu_groups:
                    site.cooling_group_of_rack[r] = (g.id, g.redundancy, len(g.members))
    except (ImportError, ValueError, AttributeError):  # a spec without a cooling plant: what-ifs say so
        return


def _ups(site: SiteMap) -> None:
    try:
        from twin.core.facility.power import expand_rack_selectors, rack_ids_by_row, resolved_topology

        topo = resolved_topology(site.spec)
        by_row = rack_ids_by_row(site.spec)
        known = set(site.racks())
        group_of: dict[str, tuple[str, bool]] = {}
        for g in topo.ups_groups:
            for m in g.members:
                group_of[m] = (g.id, g.redundancy != "N" and len(g.members) > 1)
        for pdu in topo.pdus:
            racks = expand_rack_selectors(pdu.racks, by_row, known, pdu.id)
            for ups in topo.ups:
                gid, redundant = group_of.get(ups.id, (ups.id, False))
                if ups.id in pdu.inputs or gid in pdu.inputs:
                    # a PDU with another input than this UPS's group survives its loss
                    other = len([i for i in pdu.inputs if i not in (ups.id, gid)]) > 0
                    entry = site.ups_racks.setdefault(ups.id, ([], True))
                    entry[0].extend(racks)
                    site.ups_racks[ups.id] = (entry[0], entry[1] and (redundant or other))
    except (ImportError, ValueError, AttributeError):
        return
