"""The power chain as index arrays: racks -> PDUs -> UPS groups -> UPS -> transformers -> feeds -> site.

Loads flow up one tier at a time. A child with several healthy inputs draws equally from each (a
dual-corded rack's A and B PDUs, the members of a UPS bus); a component's input is its output
through its own losses (UPS: a + bx + cx²; transformer: no-load + load loss x x²). Every sum is a
``np.bincount`` over edge arrays, so one evaluation is a handful of vector operations per tier.

Loss of redundancy: when a child's m healthy inputs share its load, losing one partner s raises
each other input c by P_child (1/(m-1) - 1/m) = P_child / (m (m-1)). For every component the twin
reports its worst single-partner loss (``load_if_partner_fails_w``: output-side, before losses).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .conversion import Stage, apply_chain

KINDS = ("pdu", "ups_group", "ups", "transformer", "feed")
PDU, UPS_GROUP, UPS, TRANSFORMER, FEED = range(5)
NO_STAGE = -1


@dataclass(frozen=True)
class PowerNetwork:
    """Static structure of one site's chain (built once from the facility spec)."""

    site_id: str
    rack_ids: tuple[str, ...]
    comp_ids: tuple[str, ...]
    comp_kind: np.ndarray            # KINDS index per component; tiers rise in this order
    comp_rating_w: np.ndarray        # PDU/UPS kW, transformer kVA at power factor 1, feed cap
    comp_stage: np.ndarray           # index into stages (NO_STAGE: lossless)
    stages: tuple[Stage, ...]
    rack_edge_rack: np.ndarray       # rack -> PDU edges
    rack_edge_comp: np.ndarray
    edge_child: np.ndarray           # component -> component edges (child draws from parent)
    edge_parent: np.ndarray
    comp_fixed_load_w: np.ndarray    # site loads attached to a component (added to its output)
    site_fixed_load_w: float = 0.0   # site loads on the site bus (after the feeds, no chain losses)
    facility_stages: tuple[Stage, ...] = ()
    group_redundancy: dict[str, str] = field(default_factory=dict)
    feed_max_ramp_w_per_s: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        kinds = self.comp_kind
        if len(self.edge_child) and (kinds[self.edge_parent] <= kinds[self.edge_child]).any():
            raise ValueError("every component edge must go up a tier (child tier < parent tier)")

    @property
    def n_racks(self) -> int:
        return len(self.rack_ids)

    @property
    def n_comp(self) -> int:
        return len(self.comp_ids)

    def index_of(self, comp_id: str) -> int:
        try:
            return self.comp_ids.index(comp_id)
        except ValueError as exc:
            raise KeyError(f"unknown power component {comp_id!r}") from exc

    def of_kind(self, kind: int) -> np.ndarray:
        return np.flatnonzero(self.comp_kind == kind)


@dataclass(frozen=True)
class ChainState:
    """Every load of one evaluation, watts. Energy closes: comp_input_w = comp_output_w + comp_loss_w."""

    rack_input_w: np.ndarray
    rack_powered: np.ndarray         # bool: at least one healthy path
    comp_alive: np.ndarray
    comp_output_w: np.ndarray        # delivered downstream (+ attached fixed loads)
    comp_input_w: np.ndarray
    comp_loss_w: np.ndarray
    comp_headroom_w: np.ndarray      # rating - output
    comp_utilization: np.ndarray     # output / rating
    load_if_partner_fails_w: np.ndarray
    feeds_w: float                   # drawn from the utility feeds
    facility_loss_w: float
    site_w: float                    # site import from the grid (before on-site sources)
    it_w: float                      # delivered to racks

    @property
    def pue(self) -> float:
        return self.site_w / self.it_w if self.it_w > 0 else float("nan")


def _alive(net: PowerNetwork, failed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Components with a healthy path to a feed (top-down), and racks with a healthy PDU."""
    alive = ~failed
    for kind in (TRANSFORMER, UPS, UPS_GROUP, PDU):
        comps = net.of_kind(kind)
        e = np.isin(net.edge_child, comps)
        ok = np.zeros(net.n_comp, dtype=bool)
        np.logical_or.at(ok, net.edge_child[e], alive[net.edge_parent[e]])
        alive[comps] &= ok[comps]
    rack_ok = np.zeros(net.n_racks, dtype=bool)
    np.logical_or.at(rack_ok, net.rack_edge_rack, alive[net.rack_edge_comp])
    return alive, rack_ok


def _stage_inputs(net: PowerNetwork, out_w: np.ndarray, comps: np.ndarray) -> np.ndarray:
    res = out_w[comps].copy()
    st = net.comp_stage[comps]
    for s in np.unique(st[st != NO_STAGE]):
        sel = st == s
        res[sel] = net.stages[s].input_w(out_w[comps][sel])
    return res


def evaluate(net: PowerNetwork, rack_input_w: np.ndarray, *, failed: np.ndarray | None = None,
             site_extra_w: float = 0.0) -> ChainState:
    """Aggregate rack input power up the chain. ``failed`` marks failed components (what-if);
    ``site_extra_w`` is load on the site bus besides the racks (e.g. cooling power from the cooling
    twin)."""
    failed = np.zeros(net.n_comp, dtype=bool) if failed is None else np.asarray(failed, dtype=bool)
    rack_w = np.maximum(np.nan_to_num(np.asarray(rack_input_w, dtype=np.float64), nan=0.0), 0.0)  # NaN = 0 W
    alive, powered = _alive(net, failed)
    rack_w_eff = np.where(powered, rack_w, 0.0)
    # rack -> PDU shares over healthy PDUs
    ok_edge = alive[net.rack_edge_comp]
    m_rack = np.bincount(net.rack_edge_rack, weights=ok_edge, minlength=net.n_racks)
    with np.errstate(divide="ignore", invalid="ignore"):
        rack_flow = np.where(ok_edge, rack_w_eff[net.rack_edge_rack] / m_rack[net.rack_edge_rack], 0.0)
    out_w = net.comp_fixed_load_w * alive + np.bincount(net.rack_edge_comp, weights=rack_flow, minlength=net.n_comp)
    in_w = np.zeros(net.n_comp)
    ok_cedge = alive[net.edge_parent] & alive[net.edge_child]
    m_comp = np.bincount(net.edge_child, weights=ok_cedge, minlength=net.n_comp)
    comp_flow = np.zeros(len(net.edge_child))
    for kind in range(len(KINDS)):
        comps = net.of_kind(kind)
        if not len(comps):
            continue
        in_w[comps] = np.where(alive[comps], _stage_inputs(net, out_w, comps), 0.0)
        e = np.flatnonzero(np.isin(net.edge_child, comps) & ok_cedge)
        if len(e):
            comp_flow[e] = in_w[net.edge_child[e]] / m_comp[net.edge_child[e]]
            out_w += np.bincount(net.edge_parent[e], weights=comp_flow[e], minlength=net.n_comp)
    loss = in_w - out_w * alive
    # loss of redundancy: worst single partner per component
    extra = np.zeros(net.n_comp)
    for child_of, parent_of, flow_child, m in (
        (net.rack_edge_rack, net.rack_edge_comp, rack_w_eff, m_rack),
        (net.edge_child, net.edge_parent, in_w, m_comp),
    ):
        extra = np.maximum(extra, _partner_extra(child_of, parent_of, flow_child, m, alive, net.n_comp))
    feeds = net.of_kind(FEED)
    feeds_w = float(in_w[feeds].sum())
    fac = apply_chain(np.array([feeds_w + net.site_fixed_load_w + site_extra_w]), net.facility_stages)
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(net.comp_rating_w > 0, out_w / net.comp_rating_w, np.nan)
    return ChainState(
        rack_input_w=rack_w_eff, rack_powered=powered, comp_alive=alive, comp_output_w=out_w, comp_input_w=in_w,
        comp_loss_w=loss, comp_headroom_w=net.comp_rating_w - out_w, comp_utilization=util,
        load_if_partner_fails_w=out_w + extra, feeds_w=feeds_w, facility_loss_w=float(fac.loss_w[0]),
        site_w=float(fac.input_w[0]), it_w=float(rack_w_eff.sum()))


def _partner_extra(child_of: np.ndarray, parent_of: np.ndarray, flow_child: np.ndarray, m: np.ndarray,
                   alive: np.ndarray, n_comp: int) -> np.ndarray:
    """max over partners s of sum_k P_k / (m_k (m_k - 1)) for children k shared by c and s."""
    ok = alive[parent_of]
    multi = ok & (m[child_of] >= 2)
    if not multi.any():
        return np.zeros(n_comp)
    idx = np.flatnonzero(multi)
    order = np.argsort(child_of[idx], kind="stable")
    idx = idx[order]
    kids = child_of[idx]
    starts = np.flatnonzero(np.r_[True, kids[1:] != kids[:-1]])
    counts = np.diff(np.r_[starts, len(kids)])
    # all ordered (c, s) pairs inside each child's healthy-input block
    rep = np.repeat(np.arange(len(starts)), counts * counts)
    within = np.arange(len(rep)) - np.repeat(np.cumsum(counts * counts) - counts * counts, counts * counts)
    c_pos = starts[rep] + within // counts[rep]
    s_pos = starts[rep] + within % counts[rep]
    keep = c_pos != s_pos
    c, s, k = parent_of[idx[c_pos[keep]]], parent_of[idx[s_pos[keep]]], kids[c_pos[keep]]
    mk = m[k]
    contrib = flow_child[k] / (mk * (mk - 1))
    key = c.astype(np.int64) * n_comp + s
    uniq, inv = np.unique(key, return_inverse=True)
    sums = np.bincount(inv, weights=contrib)
    out = np.zeros(n_comp)
    np.maximum.at(out, (uniq // n_comp).astype(np.int64), sums)
    return out


@dataclass(frozen=True)
class FailureImpact:
    failed_ids: tuple[str, ...]
    before: ChainState
    after: ChainState
    moved_w: np.ndarray              # after - before output, per component (who picks up the load)
    over_rating: np.ndarray          # component indices above rating after the failure
    racks_lost: np.ndarray           # rack indices without power after the failure


def what_if_failure(net: PowerNetwork, rack_input_w: np.ndarray, failed_ids: list[str] | tuple[str, ...],
                    *, site_extra_w: float = 0.0) -> FailureImpact:
    """A UPS, PDU, transformer or feed fails: loads that move, components over rating, racks lost."""
    failed = np.zeros(net.n_comp, dtype=bool)
    for cid in failed_ids:
        failed[net.index_of(cid)] = True
    before = evaluate(net, rack_input_w, site_extra_w=site_extra_w)
    after = evaluate(net, rack_input_w, failed=failed, site_extra_w=site_extra_w)
    over = np.flatnonzero(after.comp_alive & (after.comp_output_w > net.comp_rating_w))
    return FailureImpact(failed_ids=tuple(failed_ids), before=before, after=after,
                         moved_w=after.comp_output_w - before.comp_output_w, over_rating=over,
                         racks_lost=np.flatnonzero(~after.rack_powered))


@dataclass(frozen=True)
class Contingency:
    """N-1 analysis: for every component, its worst output over single failures of the candidates."""

    worst_output_w: np.ndarray       # per component (its normal output when no failure makes it worse)
    worst_failure: tuple[str, ...]   # per component: the failure that causes it ("" = none)
    racks_lost_by: dict[str, np.ndarray]  # failure id -> racks that lose power (only non-empty entries)

    def over_rating(self, net: PowerNetwork) -> np.ndarray:
        return np.flatnonzero(self.worst_output_w > net.comp_rating_w)


def n_minus_1(net: PowerNetwork, rack_input_w: np.ndarray, *, fail_kinds: tuple[int, ...] = (UPS, TRANSFORMER, FEED),
              site_extra_w: float = 0.0) -> Contingency:
    """Single-failure (N-1) contingency analysis over every component of ``fail_kinds``: unlike the
    per-tick partner estimate (direct siblings only), failures propagate through the whole chain
    (a transformer failure takes down the UPS units it feeds, their bus partners pick up the load
    and the transformers behind those partners carry more). One evaluation per candidate."""
    base = evaluate(net, rack_input_w, site_extra_w=site_extra_w)
    worst = base.comp_output_w.copy()
    cause = [""] * net.n_comp
    lost: dict[str, np.ndarray] = {}
    for c in np.flatnonzero(np.isin(net.comp_kind, fail_kinds)):
        failed = np.zeros(net.n_comp, dtype=bool)
        failed[c] = True
        st = evaluate(net, rack_input_w, failed=failed, site_extra_w=site_extra_w)
        worse = st.comp_alive & (st.comp_output_w > worst)
        worst = np.where(worse, st.comp_output_w, worst)
        for i in np.flatnonzero(worse):
            cause[i] = net.comp_ids[c]
        dark = np.flatnonzero(~st.rack_powered)
        if dark.size:
            lost[net.comp_ids[c]] = dark
    return Contingency(worst_output_w=worst, worst_failure=tuple(cause), racks_lost_by=lost)
