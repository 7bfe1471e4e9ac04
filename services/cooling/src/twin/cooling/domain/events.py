"""Equipment events -> conditions (pure): pump / CDU / CRAH / plant-unit failure and repair, setpoint
and ambient changes (the domain side of ``cooling.events.v1``; the codec maps the proto onto
``EquipmentEvent``). A bad event raises ``EventRejected`` naming the field and the reason, so the
stream can dead-letter it: unknown ids, values outside physical ranges, events older than the last
one applied to the same entity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .network import Conditions, CoolingNetwork

KINDS = (
    "pump_failure",
    "pump_repair",
    "cdu_failure",
    "cdu_repair",
    "crah_failure",
    "crah_repair",
    "plant_unit_failure",
    "plant_unit_repair",
    "setpoint_change",
    "ambient_change",
)
#: Plausible ranges (reject outside): facility supply within ASHRAE W-classes' span 2-60 °C (W17-W45+,
#: DESIGN §8, with margin); supply air 10-40 °C (ASHRAE allowable classes A1-A4 span 5-45 °C inlet;
#: a CRAH setpoint outside 10-40 is a typo); outdoor dry bulb -60..60 °C (recorded extremes -68 / +57 °C).
FACILITY_SUPPLY_RANGE_C, SUPPLY_AIR_RANGE_C, DRY_BULB_RANGE_C = (2.0, 60.0), (10.0, 40.0), (-60.0, 60.0)


class EventRejected(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class EquipmentEvent:
    kind: str
    entity_id: str  # CDU, CRAH or plant unit id; the site id for site-wide changes
    time_s: float  # event time, seconds since the epoch
    flow_fraction: float | None = None
    facility_supply_temp_c: float | None = None
    supply_air_temp_c: float | None = None
    dry_bulb_temp_c: float | None = None
    wet_bulb_temp_c: float | None = None


def _range(field: str, v: float | None, lo: float, hi: float) -> None:
    if v is not None and not (np.isfinite(v) and lo <= v <= hi):
        raise EventRejected(field, f"{v} outside {lo}..{hi}")


def apply_event(
    net: CoolingNetwork, cond: Conditions, ev: EquipmentEvent, last_time_s: float | None = None
) -> Conditions:
    """The conditions after one event. ``last_time_s``: the time of the last event applied to the same
    entity (an older event is rejected: events for the past do not rewrite the present)."""
    if ev.kind not in KINDS:
        raise EventRejected("kind", f"unknown kind {ev.kind!r}")
    if not np.isfinite(ev.time_s):
        raise EventRejected("event_time", "missing")
    if last_time_s is not None and ev.time_s < last_time_s:
        raise EventRejected("event_time", f"older than the last event applied to {ev.entity_id!r}")

    def index(ids: tuple[str, ...], what: str) -> int:
        try:
            return ids.index(ev.entity_id)
        except ValueError:
            raise EventRejected("entity_id", f"unknown {what} {ev.entity_id!r}") from None

    k = ev.kind
    if k in ("pump_failure", "pump_repair"):
        i = index(net.cdu_ids, "CDU")
        f = 1.0 if k == "pump_repair" else (0.0 if ev.flow_fraction is None else ev.flow_fraction)
        _range("flow_fraction", f, 0.0, 1.0)
        ff = cond.cdu_flow_factor.copy()
        ff[i] = f
        return cond.with_(cdu_flow_factor=ff)
    if k in ("cdu_failure", "cdu_repair"):
        up = cond.cdu_up.copy()
        up[index(net.cdu_ids, "CDU")] = k == "cdu_repair"
        return cond.with_(cdu_up=up)
    if k in ("crah_failure", "crah_repair"):
        up = cond.crah_up.copy()
        up[index(net.crah_ids, "CRAH")] = k == "crah_repair"
        return cond.with_(crah_up=up)
    if k in ("plant_unit_failure", "plant_unit_repair"):
        up = cond.plant_up.copy()
        up[index(net.plant_ids, "plant unit")] = k == "plant_unit_repair"
        return cond.with_(plant_up=up)
    site = ev.entity_id == net.site_id
    if k == "setpoint_change":
        if ev.facility_supply_temp_c is None and ev.supply_air_temp_c is None:
            raise EventRejected(
                "facility_supply_temp_c", "a setpoint change needs a facility or supply-air setpoint"
            )
        _range("facility_supply_temp_c", ev.facility_supply_temp_c, *FACILITY_SUPPLY_RANGE_C)
        _range("supply_air_temp_c", ev.supply_air_temp_c, *SUPPLY_AIR_RANGE_C)
        out = cond
        if ev.facility_supply_temp_c is not None:
            if not site:
                raise EventRejected(
                    "entity_id", f"a facility supply setpoint applies to the site {net.site_id!r}"
                )
            out = out.with_(facility_supply_c=float(ev.facility_supply_temp_c))
        if ev.supply_air_temp_c is not None:
            sup = out.crah_supply_c.copy()
            if site:
                sup[:] = ev.supply_air_temp_c
            else:
                sup[index(net.crah_ids, "CRAH")] = ev.supply_air_temp_c
            out = out.with_(crah_supply_c=sup)
        return out
    # ambient_change
    if not site:
        raise EventRejected("entity_id", f"an ambient change applies to the site {net.site_id!r}")
    db = cond.dry_bulb_c if ev.dry_bulb_temp_c is None else ev.dry_bulb_temp_c
    wb = cond.wet_bulb_c if ev.wet_bulb_temp_c is None else ev.wet_bulb_temp_c
    _range("dry_bulb_temp_c", ev.dry_bulb_temp_c, *DRY_BULB_RANGE_C)
    _range("wet_bulb_temp_c", ev.wet_bulb_temp_c, *DRY_BULB_RANGE_C)
    if wb > db:
        raise EventRejected("wet_bulb_temp_c", f"wet bulb {wb} above dry bulb {db}")
    return cond.with_(dry_bulb_c=float(db), wet_bulb_c=float(wb))
