"""Link states assumed for one request (``assumed_links`` on EstimateBatch, EstimatePlacements, EstimateMoe).

The jobs twin's failure what-if asks "what if this link were down?" of the same model the live path uses: the
request lists link states assumed in place of the live ones. They are validated (``assumed_links[i].link_id`` /
``.capacity_fraction`` named in INVALID_ARGUMENT), resolved like a LinkEvent's id (uplink, leaf, spine, NIC), and
applied to a copy of the live snapshot's health for that request only: capacity and flapping replaced, utilization
and everything else kept. The live state is never written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from twin.core.rpc import InvalidArgument
from twin.fabric.adapters.topology import LinkIndex, UnknownLink, core_link_state
from twin.fabric.domain.link_health import LinkHealth
from twin.fabric.live_state import LiveFabricState
from twin.fabric.simulation import MAX_BATCH_ENTRIES, LiveView


def assumed_health(health: LinkHealth, index: LinkIndex, links: Sequence, field: str = "assumed_links") -> LinkHealth:
    """``health`` with each listed link's capacity and flapping replaced (entries in order: a later entry naming the
    same slot wins); raises InvalidArgument naming the offending entry."""
    if len(links) > MAX_BATCH_ENTRIES:
        raise InvalidArgument(field, f"{len(links)} entries exceed the limit of {MAX_BATCH_ENTRIES}")
    cap = health.capacity_fraction.copy()
    flap = health.flapping.copy()
    for i, link in enumerate(links):
        f = f"{field}[{i}]"
        if not link.link_id:
            raise InvalidArgument(f"{f}.link_id", "empty")
        try:
            slots = index.slots(link.link_id)
        except UnknownLink as exc:
            raise InvalidArgument(f"{f}.link_id", str(exc)) from None
        c = float(link.capacity_fraction)
        if not math.isfinite(c) or c < 0.0 or c > 1.0:
            raise InvalidArgument(f"{f}.capacity_fraction", f"{c!r} is outside 0..1")
        cap[slots] = c
        flap[slots] = bool(link.flapping)
    for arr in (cap, flap):
        arr.flags.writeable = False
    return LinkHealth(cap, flap, health.utilization, health.event_time_s, health.changed_time_s)


def assumed_view(live: LiveFabricState, links: Sequence, field: str = "assumed_links") -> LiveView:
    """The live view with ``links`` assumed (see the module docstring); the live state is not touched."""
    snap = live.snapshot()
    health = assumed_health(snap.health, live.index, links, field)
    if np.array_equal(health.capacity_fraction, snap.health.capacity_fraction) and \
            np.array_equal(health.flapping, snap.health.flapping):
        return LiveView(snap.version, snap.link_state)
    return LiveView(snap.version, core_link_state(live.index, live.topology, health))
