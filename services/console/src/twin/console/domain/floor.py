"""The floor plan the page draws: halls → rows → racks, in the facility spec's order, with what the
colour scales need per rack (its nameplate power, from its nodes' rating).

Input: plain rack records (`RackInfo`-like: rack_id, row_id, hall_id, rack_type) and each rack type's
nameplate in watts; output: a JSON-ready dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol


class RackLike(Protocol):
    rack_id: str
    row_id: str
    hall_id: str
    rack_type: str


def floor_plan(site_id: str, racks: Iterable[RackLike], nameplate_w: Mapping[str, float]) -> dict[str, Any]:
    halls: dict[str, dict[str, list[str]]] = {}
    row_type: dict[str, str] = {}   # a spec row holds one rack type
    n = 0
    for r in racks:
        halls.setdefault(r.hall_id, {}).setdefault(r.row_id, []).append(r.rack_id)
        row_type.setdefault(r.row_id, r.rack_type)
        n += 1
    return {
        "site_id": site_id,
        "n_racks": n,
        "halls": [{"id": h, "rows": [{"id": row, "rack_type": row_type[row], "racks": ids} for row, ids in rows.items()]}
                  for h, rows in halls.items()],
        "rack_types": {t: {"nameplate_w": float(w)} for t, w in nameplate_w.items()},
    }
