"""The fabric twin's live link state: one writer path (events, counters), many readers (gRPC).

Update order for every batch (at-least-once, DESIGN §4): compute the new arrays (pure,
twin.fabric.domain.link_health) → write the changed links to the store → only then swap the new
state in and bump `version`. If the write fails nothing changes in memory, and the consumer loop
retries the batch (events are idempotent: last-event-time wins). Readers take `snapshot()`, an
immutable (version, LinkHealth, core LinkState) triple, so a gRPC answer never sees a half-applied
update.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from twin.fabric.adapters.topology import LinkIndex, UnknownLink, core_link_state
from twin.fabric.domain.link_health import (
    LinkHealth,
    PortCounters,
    apply_link_events,
    apply_utilization,
    counter_rates,
    utilization_from_rates,
)
from twin.fabric.domain.state import LinkState
from twin.fabric.domain.topology import FabricTopology
from twin.fabric.ports import LinkRows, StateStore


@dataclass(frozen=True)
class Snapshot:
    version: int
    health: LinkHealth
    link_state: LinkState  # what the collective core consumes


@dataclass
class LiveStats:
    events_applied: int = 0
    samples_applied: int = 0
    unknown_ports: int = 0
    rows_written: int = 0
    versions: int = 0
    unknown_port_examples: list[str] = field(default_factory=list)


class LiveFabricState:
    def __init__(self, site_id: str, index: LinkIndex, topology: FabricTopology, store: StateStore, *,
                 utilization_min_change: float = 0.01) -> None:
        self.site_id = site_id
        self.index = index
        self.topology = topology
        self.store = store
        self.layout = index.layout()
        self.utilization_min_change = utilization_min_change
        self.stats = LiveStats()
        self.changed = asyncio.Event()  # set on every swap; the publisher clears it
        self._lock = asyncio.Lock()
        self._counters = PortCounters.empty(index.n_links)
        health = LinkHealth.healthy(index.n_links)
        self._snapshot = Snapshot(0, health, core_link_state(index, topology, health))

    # -- readers --------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def version(self) -> int:
        return self._snapshot.version

    # -- writers --------------------------------------------------------------------------------
    async def restore(self) -> int:
        """Load the latest stored state per link (after a restart); returns the links restored."""
        rows = await self.store.latest(self.site_id)
        if len(rows) == 0:
            return 0
        slots, keep = [], []
        for i, link in enumerate(rows.link_ids):
            try:
                found = self.index.slots(link)
            except UnknownLink:
                continue  # the facility changed since the row was written
            if found.size == 1:
                slots.append(int(found[0]))
                keep.append(i)
        if not slots:
            return 0
        k = np.array(keep)
        async with self._lock:
            health = self._snapshot.health.with_links(
                np.array(slots), rows.capacity_fraction[k], rows.flapping[k], rows.utilization[k], rows.time_s[k])
            self._swap(health)
        return len(slots)

    async def apply_events(self, slots: np.ndarray, kind: np.ndarray, capacity_fraction: np.ndarray,
                           time_s: np.ndarray) -> int:
        """Apply validated events (one row per affected slot); returns the number of links changed."""
        async with self._lock:
            health, changed = apply_link_events(self._snapshot.health, slots, kind, capacity_fraction, time_s)
            await self._write(health, changed)
            self.stats.events_applied += int(np.asarray(slots).size)
            if changed.size or health is not self._snapshot.health:
                self._swap(health, bump=changed.size > 0)
            return int(changed.size)

    async def apply_counters(self, slots: np.ndarray, tx_bytes: np.ndarray, rx_bytes: np.ndarray,
                             time_s: np.ndarray) -> int:
        """Apply cumulative port counters; returns the number of links whose utilization moved."""
        async with self._lock:
            counters, ports, tx_bps, rx_bps = counter_rates(self._counters, slots, tx_bytes, rx_bytes, time_s)
            util_slots, util = utilization_from_rates(self.layout, ports, tx_bps, rx_bps)
            t = float(np.max(time_s)) if np.asarray(time_s).size else 0.0
            health, moved = apply_utilization(self._snapshot.health, util_slots, util, t,
                                              self.utilization_min_change)
            await self._write(health, moved)
            self._counters = counters
            self.stats.samples_applied += int(np.asarray(slots).size)
            if moved.size:
                self._swap(health)
            return int(moved.size)

    def rows_for(self, health: LinkHealth, slots: np.ndarray) -> LinkRows:
        slots = np.asarray(slots, dtype=np.int64)
        return LinkRows(
            time_s=health.changed_time_s[slots].copy(),
            link_ids=[self.index.link_id(s) for s in slots.tolist()],
            capacity_fraction=health.capacity_fraction[slots].copy(),
            utilization=health.utilization[slots].copy(),
            flapping=health.flapping[slots].copy(),
        )

    async def _write(self, health: LinkHealth, slots: np.ndarray) -> None:
        if np.asarray(slots).size:
            self.stats.rows_written += await self.store.write(self.site_id, self.rows_for(health, slots))

    def _swap(self, health: LinkHealth, bump: bool = True) -> None:
        if not bump:
            # event times advanced but nothing visible changed: keep version and core state
            self._snapshot = Snapshot(self._snapshot.version, health, self._snapshot.link_state)
            return
        self._snapshot = Snapshot(self._snapshot.version + 1, health,
                                  core_link_state(self.index, self.topology, health))
        self.stats.versions += 1
        self.changed.set()
