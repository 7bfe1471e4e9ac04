"""Power resources: PowerDistributionMetrics, Outlet, Circuit, EnvironmentMetrics, legacy Power."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from twin.ingest.adapters.redfish.accumulate import _Ctx
from twin.ingest.adapters.redfish.values import _Bad, _not_a_string, _number, _reading

_LN = ("Line1ToNeutral", "Line2ToNeutral", "Line3ToNeutral")
_LL = ("Line1ToLine2", "Line2ToLine3", "Line3ToLine1")
_LINES = ("Line1", "Line2", "Line3")
_FEED_CIRCUITS = {"Mains", "Feeder", "Subfeed", "Input"}


def _phase_power(doc: Mapping[str, Any]) -> list[float] | None:
    poly = doc.get("PolyPhasePowerWatts")
    if isinstance(poly, Mapping):
        for names in (_LN, _LL):
            if any(isinstance(poly.get(n), Mapping) and poly[n].get("Reading") is not None for n in names):
                out = []
                for n in names:
                    r = _reading(poly, n) if n in poly else None
                    out.append(math.nan if r is None else r)
                return out
    total = _reading(doc, "PowerWatts")
    if total is None:
        return None
    amps = doc.get("PolyPhaseCurrentAmps")
    if isinstance(amps, Mapping):
        currents = [_reading(amps, n) if n in amps else None for n in _LINES]
        known = [c for c in currents if c is not None]
        if len(known) >= 2 and sum(known) > 0:
            s = sum(known)
            return [math.nan if c is None else total * c / s for c in currents]
    return [total]


def _power_resource(doc: Mapping[str, Any], ctx: _Ctx, *, load: bool) -> None:
    rid = ctx.result.odata_id
    try:
        phases = _phase_power(doc)
    except _Bad as exc:
        ctx.reject(rid, str(exc))
        return
    if phases is None:
        ctx.reject(rid, f"{ctx.result.resource_type} has no power reading (PowerWatts/PolyPhasePowerWatts); "
                        "unmonitored?")
        return
    if any(v < 0 for v in phases if not math.isnan(v)):
        ctx.reject(rid, f"negative power reading {phases}")
        return
    racks = ctx.racks_of(rid, load=load)
    if racks is None:
        return
    ctx.put_power(racks, ctx.received_time, phases)
    ctx.flush()


def _pdm(doc: Mapping[str, Any], ctx: _Ctx) -> None:
    _power_resource(doc, ctx, load=False)


def _outlet(doc: Mapping[str, Any], ctx: _Ctx) -> None:
    _power_resource(doc, ctx, load=True)


def _circuit(doc: Mapping[str, Any], ctx: _Ctx) -> None:
    bad = _not_a_string(doc, "CircuitType")   # Redfish: an enum string (fuzz find: a list crashed)
    if bad is not None:
        ctx.reject(ctx.result.odata_id, bad)
        return
    ctype = doc.get("CircuitType")
    _power_resource(doc, ctx, load=ctype not in _FEED_CIRCUITS)


def _environment_metrics(doc: Mapping[str, Any], ctx: _Ctx) -> None:
    rid = ctx.result.odata_id
    try:
        power = _reading(doc, "PowerWatts")
    except _Bad as exc:
        ctx.reject(rid, str(exc))
        return
    if power is None:
        ctx.reject(rid, "EnvironmentMetrics without PowerWatts: its TemperatureCelsius/HumidityPercent describe "
                        "the device itself, not a rack inlet/outlet or coolant value")
        return
    racks = ctx.racks_of(rid)
    if racks is None:
        return
    ctx.put_power(racks, ctx.received_time, [power])
    ctx.flush()


def _legacy_power(doc: Mapping[str, Any], ctx: _Ctx) -> None:
    rid = ctx.result.odata_id
    controls = doc.get("PowerControl")
    total: list[float] = []
    try:
        for i, pc in enumerate(controls if isinstance(controls, list) else []):
            if isinstance(pc, Mapping) and pc.get("PowerConsumedWatts") is not None:
                total.append(_number(pc["PowerConsumedWatts"], f"PowerControl/{i}/PowerConsumedWatts"))
    except _Bad as exc:
        ctx.reject(rid, str(exc))
        return
    if not total:
        ctx.reject(rid, "legacy Power resource without PowerControl[].PowerConsumedWatts")
        return
    racks = ctx.racks_of(rid)
    if racks is None:
        return
    ctx.put_power(racks, ctx.received_time, [math.fsum(total)])
    ctx.flush()
