"""Alerts in force between two evaluations: which to raise, which to clear (pure, no I/O).

A twin evaluates its conditions again and again; an alert goes out when its condition starts and once
more, marked ``cleared``, when it ends. An alert is keyed by ``(entity_id, kind, severity)``:

* raised: a key in force now that was not at the previous evaluation (a new condition, or the same
  condition at another severity: a warning that became critical is raised again);
* cleared: an ``(entity_id, kind)`` no longer in force at any severity -- one clear per entity and kind,
  carrying the value held for one of its previous keys (the most severe one first when severities sort
  as "critical" < "warning", as the twins' names do). A severity that drops while another of the same
  entity and kind stays in force clears nothing.

The cooling twin's ``cooling.alerts.v1`` and the power twin's ``power.alerts.v1`` follow these rules
(both through this helper).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")
AlertKey = tuple[str, str, str]   # (entity_id, kind, severity)


def transitions(active: Mapping[AlertKey, T], current: Mapping[AlertKey, T]) -> tuple[list[T], list[T]]:
    """(raised, cleared) going from the alerts ``active`` at the previous evaluation to those ``current`` now.

    ``raised`` holds the values of ``current`` whose key is new, in ``current``'s order; ``cleared`` the
    value of ``active`` for each entity and kind that ended, sorted by key. The caller keeps ``current``
    as the next ``active``."""
    raised = [v for k, v in current.items() if k not in active]
    gone = [k for k in active if k not in current]
    if not gone:
        return raised, []
    still = {k[:2] for k in current}
    cleared = []
    for key in sorted(gone):
        ek = key[:2]
        if ek not in still:
            still.add(ek)
            cleared.append(active[key])
    return raised, cleared


__all__ = ["AlertKey", "transitions"]
