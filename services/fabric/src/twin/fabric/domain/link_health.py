"""Live link health and utilization as numpy arrays: pure updates from link events and counters.

One flat array of link slots covers the scale-out fabric: slots [0, n_uplinks) are the leaf-spine
uplinks (in inventory `uplink_ids()` order), slots [n_uplinks, n_uplinks + n_nics) the GPU NICs
(node-major, `<node>/nic<K>` order). Which id maps to which slot is the adapters' business; here
everything is indices, float seconds and arrays. Nothing is mutated: every update returns a new state.

Event semantics (a link's state is what the last applicable event says, applied in event-time order):
  DOWN      capacity 0, not flapping
  UP        capacity 1, not flapping
  DEGRADED  capacity = the event's capacity fraction (0..1); flapping unchanged
  FLAPPING  flapping; capacity unchanged
An event older than the last event applied to its link is ignored, so redelivered or reordered
events never roll state back. A flapping link keeps `FLAP_CAPACITY_FACTOR` of its capacity
(traffic stalls while it retrains; adaptive routing moves part of the load elsewhere).

Utilization comes from cumulative port byte counters: rate = Δbytes / Δt, utilization = rate /
port speed (max of the tx and rx directions), see `utilization_from_rates`. A port's counters set that
port's own utilization only: NIC counters are never spread onto the leaf's uplinks as "other
traffic" (they are the running jobs' own collectives, which the collective model already routes over
the uplinks for the job it times; see `utilization_from_rates`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KIND_DOWN = 1
KIND_UP = 2
KIND_FLAPPING = 3
KIND_DEGRADED = 4
KINDS = (KIND_DOWN, KIND_UP, KIND_FLAPPING, KIND_DEGRADED)

FLAP_CAPACITY_FACTOR = 0.5


@dataclass(frozen=True)
class LinkHealth:
    """Health of every link slot. Arrays are read-only; updates return new instances."""

    capacity_fraction: np.ndarray  # (n,) float64, 0 = down, 1 = healthy
    flapping: np.ndarray  # (n,) bool
    utilization: np.ndarray  # (n,) float64 background utilization 0..1 from counters
    event_time_s: np.ndarray  # (n,) float64 epoch seconds of the last applied event (-inf: none)
    changed_time_s: np.ndarray  # (n,) float64 epoch seconds of the last change of any kind (-inf: none)

    @classmethod
    def healthy(cls, n_links: int) -> LinkHealth:
        return _frozen(cls(
            capacity_fraction=np.ones(n_links),
            flapping=np.zeros(n_links, dtype=bool),
            utilization=np.zeros(n_links),
            event_time_s=np.full(n_links, -np.inf),
            changed_time_s=np.full(n_links, -np.inf),
        ))

    @property
    def n_links(self) -> int:
        return int(self.capacity_fraction.shape[0])

    def effective_capacity(self) -> np.ndarray:
        """Capacity fraction the collective model should see (flapping links penalised)."""
        return self.capacity_fraction * np.where(self.flapping, FLAP_CAPACITY_FACTOR, 1.0)

    def impaired(self) -> np.ndarray:
        """Mask of links that differ from healthy and idle (what a FabricState snapshot lists)."""
        return (self.capacity_fraction < 1.0) | self.flapping | (self.utilization > 0.0)

    def with_links(self, idx: np.ndarray, capacity_fraction: np.ndarray, flapping: np.ndarray,
                   utilization: np.ndarray, changed_time_s: np.ndarray) -> LinkHealth:
        """Set given links outright (restoring state from storage). Event time = changed time."""
        idx = np.asarray(idx, dtype=np.int64)
        cap, flap, util = self.capacity_fraction.copy(), self.flapping.copy(), self.utilization.copy()
        ev, ch = self.event_time_s.copy(), self.changed_time_s.copy()
        cap[idx] = np.clip(capacity_fraction, 0.0, 1.0)
        flap[idx] = flapping
        util[idx] = np.clip(utilization, 0.0, 1.0)
        ev[idx] = changed_time_s
        ch[idx] = changed_time_s
        return _frozen(LinkHealth(cap, flap, util, ev, ch))


def _frozen(state: LinkHealth) -> LinkHealth:
    for arr in (state.capacity_fraction, state.flapping, state.utilization, state.event_time_s,
                state.changed_time_s):
        arr.flags.writeable = False
    return state


def event_errors(kind: np.ndarray, capacity_fraction: np.ndarray) -> list[str | None]:
    """Why each event is invalid (None = valid). Link ids are checked by the caller's index."""
    kind = np.asarray(kind)
    cap = np.asarray(capacity_fraction, dtype=np.float64)
    out: list[str | None] = []
    for k, c in zip(kind.tolist(), cap.tolist(), strict=True):
        if k not in KINDS:
            out.append(f"kind: {k} is not DOWN, UP, FLAPPING or DEGRADED")
        elif not np.isfinite(c) or c < 0.0 or c > 1.0:
            out.append(f"capacity_fraction: {c!r} is outside 0..1")
        else:
            out.append(None)
    return out


def _last_per_link(link: np.ndarray) -> np.ndarray:
    """Positions of the last occurrence of each distinct link id in `link`."""
    if link.size == 0:
        return np.zeros(0, dtype=np.int64)
    rev_first = np.unique(link[::-1], return_index=True)[1]
    return link.size - 1 - rev_first


def apply_link_events(state: LinkHealth, link_idx: np.ndarray, kind: np.ndarray,
                      capacity_fraction: np.ndarray, event_time_s: np.ndarray) -> tuple[LinkHealth, np.ndarray]:
    """Apply a batch of valid events; returns (new state, sorted indices of links whose health changed).

    One event may name several links (a switch): pass one row per affected link. Rows are applied in
    (event time, position) order, which equals applying them one by one.
    """
    link_idx = np.asarray(link_idx, dtype=np.int64)
    kind = np.asarray(kind, dtype=np.int64)
    cap_in = np.asarray(capacity_fraction, dtype=np.float64)
    t = np.asarray(event_time_s, dtype=np.float64)
    if link_idx.size == 0:
        return state, np.zeros(0, dtype=np.int64)
    if link_idx.min() < 0 or link_idx.max() >= state.n_links:
        raise IndexError("link index out of range")
    if not np.isin(kind, KINDS).all():
        raise ValueError("unknown event kind (validate with event_errors first)")

    order = np.lexsort((np.arange(link_idx.size), t))
    link_idx, kind, cap_in, t = link_idx[order], kind[order], cap_in[order], t[order]
    fresh = t >= state.event_time_s[link_idx]
    link_idx, kind, cap_in, t = link_idx[fresh], kind[fresh], cap_in[fresh], t[fresh]

    cap = state.capacity_fraction.copy()
    flap = state.flapping.copy()
    ev = state.event_time_s.copy()

    sets_cap = kind != KIND_FLAPPING
    value = np.where(kind == KIND_DOWN, 0.0, np.where(kind == KIND_UP, 1.0, np.clip(cap_in, 0.0, 1.0)))
    last = _last_per_link(link_idx[sets_cap])
    cap[link_idx[sets_cap][last]] = value[sets_cap][last]

    sets_flap = kind != KIND_DEGRADED
    last = _last_per_link(link_idx[sets_flap])
    flap[link_idx[sets_flap][last]] = (kind[sets_flap] == KIND_FLAPPING)[last]

    np.maximum.at(ev, link_idx, t)
    changed = np.flatnonzero((cap != state.capacity_fraction) | (flap != state.flapping))
    ch = state.changed_time_s.copy()
    ch[changed] = ev[changed]
    new = _frozen(LinkHealth(cap, flap, state.utilization, ev, ch))
    return new, changed


# -- counters → utilization ---------------------------------------------------------------------


@dataclass(frozen=True)
class PortCounters:
    """Last cumulative byte counters seen per port slot (NaN time: never seen)."""

    tx_bytes: np.ndarray  # (n,) float64
    rx_bytes: np.ndarray  # (n,) float64
    time_s: np.ndarray  # (n,) float64

    @classmethod
    def empty(cls, n_ports: int) -> PortCounters:
        return cls(np.zeros(n_ports), np.zeros(n_ports), np.full(n_ports, np.nan))


def counter_rates(counters: PortCounters, port_idx: np.ndarray, tx_bytes: np.ndarray, rx_bytes: np.ndarray,
                  time_s: np.ndarray) -> tuple[PortCounters, np.ndarray, np.ndarray, np.ndarray]:
    """Rates from cumulative counters: returns (new counters, ports, tx_Bps, rx_Bps).

    Samples may hold several ticks of a port in any order; samples not newer than the stored one
    are ignored (redelivery). A port gets the rate of its two most recent samples; a counter that
    went backwards (reset, wrap) yields no rate for that step and restarts from the new value.
    """
    p = np.asarray(port_idx, dtype=np.int64)
    tx = np.asarray(tx_bytes, dtype=np.float64)
    rx = np.asarray(rx_bytes, dtype=np.float64)
    t = np.asarray(time_s, dtype=np.float64)
    stored_t = counters.time_s[p]
    keep = np.isnan(stored_t) | (t > stored_t)
    p, tx, rx, t = p[keep], tx[keep], rx[keep], t[keep]
    if p.size == 0:
        return counters, np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    order = np.lexsort((t, p))
    p, tx, rx, t = p[order], tx[order], rx[order], t[order]
    # one sample per (port, time): a duplicate tick adds nothing
    dup = np.zeros(p.size, dtype=bool)
    dup[1:] = (p[1:] == p[:-1]) & (t[1:] == t[:-1])
    p, tx, rx, t = p[~dup], tx[~dup], rx[~dup], t[~dup]

    same = np.zeros(p.size, dtype=bool)
    same[1:] = p[1:] == p[:-1]
    prev_tx = np.where(same, np.roll(tx, 1), counters.tx_bytes[p])
    prev_rx = np.where(same, np.roll(rx, 1), counters.rx_bytes[p])
    prev_t = np.where(same, np.roll(t, 1), counters.time_s[p])

    last = np.ones(p.size, dtype=bool)
    last[:-1] = p[:-1] != p[1:]
    dt = t - prev_t
    valid = last & np.isfinite(dt) & (dt > 0) & (tx >= prev_tx) & (rx >= prev_rx)

    new_tx, new_rx, new_t = counters.tx_bytes.copy(), counters.rx_bytes.copy(), counters.time_s.copy()
    new_tx[p[last]], new_rx[p[last]], new_t[p[last]] = tx[last], rx[last], t[last]
    rate_ports = p[valid]
    return (PortCounters(new_tx, new_rx, new_t), rate_ports,
            (tx[valid] - prev_tx[valid]) / dt[valid], (rx[valid] - prev_rx[valid]) / dt[valid])


@dataclass(frozen=True)
class LinkLayout:
    """What utilization mapping needs to know about the fabric (built by the adapters from the spec).

    Slots [0, n_uplinks) are uplinks, [n_uplinks, n_uplinks + n_nics) NICs.
    """

    n_uplinks: int
    n_nics: int
    uplink_leaf: np.ndarray  # (n_uplinks,) leaf index of each uplink
    nic_leaf: np.ndarray  # (n_nics,) leaf index each NIC is cabled to
    uplink_bytes_per_s: float
    nic_bytes_per_s: float

    @property
    def n_links(self) -> int:
        return self.n_uplinks + self.n_nics


def utilization_from_rates(layout: LinkLayout, port_slot: np.ndarray, tx_Bps: np.ndarray,
                           rx_Bps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Utilization per link slot from port rates: returns (slots, utilization 0..1).

    Each port measures its own link: a NIC port its NIC, a leaf uplink port (switch counters) that
    uplink. Utilization of a direction = rate / port speed; a link's utilization is its busier direction.

    NIC counters are NOT turned into uplink utilization. The core reads uplink utilization as traffic
    of *other* jobs competing with the one it times, but the bytes a NIC moves are the running jobs'
    own collectives, whose spine crossings the collective model already charges to the uplinks. Spreading
    them onto the leaf's uplinks counted a job against itself, and because a counter rate covers one
    sampling interval, the answer depended on the phase that interval caught: a communication phase
    (NICs near line rate) under a 4:1 oversubscribed leaf estimated the uplinks >100 % busy, clipped to
    1, and the core answered "no bandwidth left" (infinite time) even with every link healthy; a compute
    phase left them nearly idle. One uplink down then gave a finite slowdown or infinity from run to run.
    """
    slot = np.asarray(port_slot, dtype=np.int64)
    tx = np.asarray(tx_Bps, dtype=np.float64)
    rx = np.asarray(rx_Bps, dtype=np.float64)
    if slot.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    speed = np.where(slot < layout.n_uplinks, layout.uplink_bytes_per_s, layout.nic_bytes_per_s)
    return slot, np.clip(np.maximum(tx, rx) / speed, 0.0, 1.0)


def apply_utilization(state: LinkHealth, slots: np.ndarray, utilization: np.ndarray, time_s: float,
                      min_change: float = 0.0) -> tuple[LinkHealth, np.ndarray]:
    """Set utilization of given slots; returns (new state, slots whose utilization moved > min_change)."""
    slots = np.asarray(slots, dtype=np.int64)
    if slots.size == 0:
        return state, slots
    last = _last_per_link(slots)
    slots, util = slots[last], np.clip(np.asarray(utilization, dtype=np.float64)[last], 0.0, 1.0)
    moved = np.abs(util - state.utilization[slots]) > min_change
    if not moved.any():
        return state, np.zeros(0, dtype=np.int64)
    u = state.utilization.copy()
    ch = state.changed_time_s.copy()
    u[slots[moved]] = util[moved]
    ch[slots[moved]] = time_s
    new = _frozen(LinkHealth(state.capacity_fraction, state.flapping, u, state.event_time_s, ch))
    return new, np.sort(slots[moved])
