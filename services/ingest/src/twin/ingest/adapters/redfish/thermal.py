"""Thermal / cooling resources: CoolantConnector, ThermalMetrics, legacy Thermal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twin.ingest.adapters.redfish.accumulate import _Ctx
from twin.ingest.adapters.redfish.values import _Bad, _number, _reading


def _coolant_connector(doc: Mapping[str, Any], ctx: _Ctx) -> None:
    rid = ctx.result.odata_id
    if "/PrimaryCoolantConnectors/" in rid + "/":
        ctx.reject(rid, "primary (facility-side) coolant connector of a CDU; the rack's coolant values come "
                        "from its SecondaryCoolantConnectors")
        return
    try:
        vals = {
            "coolant_supply_temp_c": _reading(doc, "SupplyTemperatureCelsius"),
            "coolant_return_temp_c": _reading(doc, "ReturnTemperatureCelsius"),
            "coolant_flow_lpm": _reading(doc, "FlowLitersPerMinute"),
        }
    except _Bad as exc:
        ctx.reject(rid, str(exc))
        return
    if all(v is None for v in vals.values()):
        ctx.reject(rid, "CoolantConnector without supply/return temperature or flow readings")
        return
    if vals["coolant_flow_lpm"] is not None and vals["coolant_flow_lpm"] < 0:
        ctx.reject(rid, f"negative coolant flow {vals['coolant_flow_lpm']} L/min")
        return
    racks = ctx.racks_of(rid)
    if racks is None:
        return
    for name, v in vals.items():
        if v is not None:
            ctx.put(racks, ctx.received_time, name, v)
    ctx.flush()


def _thermal_metrics(doc: Mapping[str, Any], ctx: _Ctx) -> None:
    rid = ctx.result.odata_id
    summary = doc.get("TemperatureSummaryCelsius")
    try:
        intake = _reading(summary, "Intake") if isinstance(summary, Mapping) else None
        exhaust = _reading(summary, "Exhaust") if isinstance(summary, Mapping) else None
    except _Bad as exc:
        ctx.reject(rid, str(exc))
        return
    if intake is None and exhaust is None:
        ctx.reject(rid, "ThermalMetrics without TemperatureSummaryCelsius Intake/Exhaust readings")
        return
    racks = ctx.racks_of(rid)
    if racks is None:
        return
    if intake is not None:
        ctx.put(racks, ctx.received_time, "inlet_air_temp_c", intake)
    if exhaust is not None:
        ctx.put(racks, ctx.received_time, "outlet_air_temp_c", exhaust)
    ctx.flush()


def _legacy_thermal(doc: Mapping[str, Any], ctx: _Ctx) -> None:
    rid = ctx.result.odata_id
    found: dict[str, float] = {}
    temps = doc.get("Temperatures")
    for i, t in enumerate(temps if isinstance(temps, list) else []):
        if not isinstance(t, Mapping):
            continue
        name = {"Intake": "inlet_air_temp_c", "Exhaust": "outlet_air_temp_c"}.get(t.get("PhysicalContext"))
        if name is None or t.get("ReadingCelsius") is None:
            continue
        try:
            found[name] = _number(t["ReadingCelsius"], f"Temperatures/{i}/ReadingCelsius")
        except _Bad as exc:
            ctx.reject(rid, str(exc))
            return
    if not found:
        ctx.reject(rid, "legacy Thermal resource without an Intake/Exhaust ReadingCelsius")
        return
    racks = ctx.racks_of(rid)
    if racks is None:
        return
    for name, v in found.items():
        ctx.put(racks, ctx.received_time, name, v)
    ctx.flush()
