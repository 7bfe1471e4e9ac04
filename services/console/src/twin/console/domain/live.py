"""The console's picture of the site: the last state of every entity, and the recent events.

Pure data: JSON-ready dicts in (made by adapters/codec.py), JSON-ready dicts out. Two kinds of input:

- states (power, cooling, jobs), one per entity: the newest by state time wins, an older one that
  arrives late (another partition, a replay) is ignored;
- events (alerts, plans, recommendations): kept in arrival order, the last `max_events` of them;
- the scenario run started from the page (demo mode): its name, status and steps so far, one at a time.

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
    scenario: dict[str, Any] | None = None   # {id, name, action, status, started_at, steps: [...], ...}
    _scenario_dirty: bool = field(default=False, repr=False)

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

    def set_scenario(self, run: dict[str, Any]) -> None:
        """A new scenario run replaces the last one (its steps start empty)."""
        self.scenario = {**run, "steps": list(run.get("steps", []))}
        self._scenario_dirty = True

    def scenario_step(self, run_id: str, step: dict[str, Any]) -> bool:
        """Append a step to run `run_id` (False: that run is no longer the current one)."""
        if self.scenario is None or self.scenario.get("id") != run_id:
            return False
        self.scenario["steps"].append(step)
        self._scenario_dirty = True
        return True

    def finish_scenario(self, run_id: str, **fields: Any) -> bool:
        if self.scenario is None or self.scenario.get("id") != run_id:
            return False
        self.scenario.update(fields)
        self._scenario_dirty = True
        return True

    def snapshot(self) -> dict[str, Any]:
        return {"sections": {s: list(v.values()) for s, v in self.entities.items()}, "events": list(self.events),
                "scenario": self.scenario}

    def take_changes(self) -> dict[str, Any] | None:
        """What changed since the last call (None: nothing), in the snapshot's shape; `scenario` (the whole
        current run, a few kB at most) only when it changed."""
        if not self._dirty and not self._new_events and not self._scenario_dirty:
            return None
        out = {"sections": {s: list(v.values()) for s, v in self._dirty.items()}, "events": self._new_events}
        if self._scenario_dirty:
            out["scenario"] = self.scenario
        self._dirty = {}
        self._new_events = []
        self._scenario_dirty = False
        return out
