"""The console's picture of the site: the last state of every entity, and the recent events.

Pure data: JSON-ready dicts in (made by adapters/codec.py), JSON-ready dicts out. Two kinds of input:

- states (power, cooling, jobs), one per entity: the newest by state time wins, an older one that
  arrives late (another partition, a replay) is ignored;
- events (alerts, plans, recommendations): kept in arrival order, the last `max_events` of them.

`snapshot()` is what a new browser gets at once; `take_changes()` is what changed since the last call
(the fan-out sends it to every browser at once, so a burst of updates to one rack costs one entry).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

SECTIONS = ("power", "cooling", "jobs")


@dataclass
class LiveState:
    max_events: int = 200
    entities: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {s: {} for s in SECTIONS})
    events: deque = field(init=False)
    applied: int = 0
    stale: int = 0
    _dirty: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict, repr=False)
    _new_events: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.events = deque(maxlen=max(self.max_events, 1))

    def apply(self, section: str, state: dict[str, Any]) -> bool:
        """Keep `state` (a dict with "id" and "t", seconds) unless a newer one of that entity is held."""
        if section not in self.entities:
            raise KeyError(f"unknown section {section!r} (one of {', '.join(SECTIONS)})")
        held = self.entities[section].get(state["id"])
        if held is not None and (held.get("t") or 0.0) > (state.get("t") or 0.0):
            self.stale += 1
            return False
        self.entities[section][state["id"]] = state
        self._dirty.setdefault(section, {})[state["id"]] = state
        self.applied += 1
        return True

    def add_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self._new_events.append(event)
        if len(self._new_events) > self.events.maxlen:
            del self._new_events[: len(self._new_events) - self.events.maxlen]

    def snapshot(self) -> dict[str, Any]:
        return {"sections": {s: list(v.values()) for s, v in self.entities.items()}, "events": list(self.events)}

    def take_changes(self) -> dict[str, Any] | None:
        """What changed since the last call (None: nothing), in the snapshot's shape."""
        if not self._dirty and not self._new_events:
            return None
        out = {"sections": {s: list(v.values()) for s, v in self._dirty.items()}, "events": self._new_events}
        self._dirty = {}
        self._new_events = []
        return out
