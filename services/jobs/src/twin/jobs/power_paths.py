"""Which racks hang below each power component of the facility spec (for PDU / UPS / transformer / feed alerts).

The power chain (``twin.core.facility.power``, the one the power twin evaluates): racks -> PDUs (one, or two for
A/B dual-corded racks) -> UPS groups (buses) / UPS units / transformers -> transformers -> utility feeds. A
component's racks are every rack with a path through it (an alert on it concerns their power); its *sole* racks
are those whose every path to a feed crosses it (it failing or tripping unpowers them; a dual-corded rack or a
UPS unit with partners on its bus has a way around).

``power_paths`` is pure (plain mappings in, frozen results out); ``power_paths_of_spec`` reads the spec's resolved
topology (generated from counts or explicit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PowerPath:
    component: str
    racks: frozenset[str]          # racks with a path through it
    sole: frozenset[str]           # racks without a path around it


def power_paths(parents: Mapping[str, Sequence[str]], rack_pdus: Mapping[str, Sequence[str]]
                ) -> dict[str, PowerPath]:
    """``parents``: component -> the components it draws from (a UPS bus: its members; a feed: none, the roots);
    ``rack_pdus``: rack -> its PDUs. Returns every component's ``PowerPath`` (components no rack reaches: none)."""
    up_memo: dict[str, frozenset[str]] = {}

    def upstream(c: str) -> frozenset[str]:
        """c and every component above it."""
        hit = up_memo.get(c)
        if hit is None:
            out = {c}
            for p in parents.get(c, ()):
                out |= upstream(p)
            hit = up_memo[c] = frozenset(out)
        return hit

    racks: dict[str, set[str]] = {}
    for rack, pdus in rack_pdus.items():
        for c in frozenset().union(*(upstream(p) for p in pdus)) if pdus else ():
            racks.setdefault(c, set()).add(rack)

    upstream_all = frozenset(up_memo)
    pdus_all = {p for ps in rack_pdus.values() for p in ps}

    def powered_without(removed: str) -> dict[str, bool]:
        memo: dict[str, bool] = {}

        def alive(c: str) -> bool:
            hit = memo.get(c)
            if hit is None:
                ps = parents.get(c, ())
                hit = memo[c] = c != removed and (not ps or any(alive(p) for p in ps))
            return hit

        return {c: alive(c) for c in upstream_all}

    out: dict[str, PowerPath] = {}
    for c, below in racks.items():
        if c in pdus_all:  # a PDU feeds racks only: its sole racks are those without another PDU
            sole = {r for r in below if len(rack_pdus[r]) == 1}
        else:
            alive = powered_without(c)
            sole = {r for r in below if not any(alive[p] for p in rack_pdus[r])}
        out[c] = PowerPath(c, frozenset(below), frozenset(sole))
    return out


def power_paths_of_spec(spec) -> dict[str, PowerPath]:
    """The facility spec's power components -> their racks (ValueError from the spec's own checks)."""
    from twin.core.facility.power import expand_rack_selectors, rack_ids_by_row, resolved_topology

    topo = resolved_topology(spec)
    by_row = rack_ids_by_row(spec)
    known = {r for rs in by_row.values() for r in rs}
    parents: dict[str, list[str]] = {}
    for t in topo.transformers:
        parents[t.id] = list(t.inputs)
    for u in topo.ups:
        parents[u.id] = list(u.inputs)
    for g in topo.ups_groups:
        parents[g.id] = list(g.members)
    rack_pdus: dict[str, list[str]] = {}
    for p in topo.pdus:
        parents[p.id] = list(p.inputs)
        for r in expand_rack_selectors(p.racks, by_row, known, p.id):
            rack_pdus.setdefault(r, []).append(p.id)
    return power_paths(parents, rack_pdus)
