"""Thermal / cooling resources: CoolantConnector, ThermalMetrics, legacy Thermal."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from twin.ingest.adapters.redfish.accumulate import _Ctx
from twin.ingest.adapters.redfish.values import _Bad, _number, _reading
from twin.ingest.domain.equipment import CDU_FIELDS, EquipmentBatch, EquipmentSample

COOLING_UNIT_LINKS_ONLY = (
    "CoolingUnit holds links and status only; its readings are in its SecondaryCoolantConnectors "
    "(pump failures and Status.Conditions are events, not RackSamples telemetry). For CDU equipment "
    "telemetry POST it with PrimaryCoolantConnectors, SecondaryCoolantConnectors and Pumps expanded "
    "($expand: their Members with readings)"
)


def _members(doc: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    coll = doc.get(name)
    members = coll.get("Members") if isinstance(coll, Mapping) else None
    return [m for m in members if isinstance(m, Mapping)] if isinstance(members, list) else []


def _cooling_unit(doc: Mapping[str, Any], ctx: _Ctx) -> None:
    """A CDU (``/redfish/v1/ThermalEquipment/CDUs/{id}``, CoolingUnit) with its coolant connectors and pumps
    expanded -> one CDU equipment sample: primary (facility) and secondary supply/return temperatures and flow
    (the first connector with readings of each side), the secondary ``DeltaPressurekPa``, ``HeatRemovedkW``
    (secondary, else primary; x 1000 = W) and the mean ``PumpSpeedPercent`` of the pumps that report one.
    The CDU id is the resource's ``Id`` (the facility spec's CDU id; the ingest consumer rejects unknown ids);
    the sample time is the receive time (a CoolingUnit carries no reading timestamp).
    Without expanded readings it is links and status only, rejected as before."""
    rid = ctx.result.odata_id
    primary = _members(doc, "PrimaryCoolantConnectors")
    secondary = _members(doc, "SecondaryCoolantConnectors")
    pumps = _members(doc, "Pumps")
    values = dict.fromkeys(CDU_FIELDS, math.nan)
    try:
        for side, members in (("primary", primary), ("secondary", secondary)):
            for m in members:
                got = {f"{side}_supply_temp_c": _reading(m, "SupplyTemperatureCelsius"),
                       f"{side}_return_temp_c": _reading(m, "ReturnTemperatureCelsius"),
                       f"{side}_flow_lpm": _reading(m, "FlowLitersPerMinute")}
                if all(v is None for v in got.values()):
                    continue
                values.update({k: v for k, v in got.items() if v is not None})
                dp, heat = _reading(m, "DeltaPressurekPa"), _reading(m, "HeatRemovedkW")
                if dp is not None and (side == "secondary" or math.isnan(values["differential_pressure_kpa"])):
                    values["differential_pressure_kpa"] = dp
                if heat is not None and (side == "secondary" or math.isnan(values["heat_removed_w"])):
                    values["heat_removed_w"] = heat * 1000.0
                break
        speeds = [s for s in (_number(p["PumpSpeedPercent"]["Reading"], "PumpSpeedPercent/Reading")
                              for p in pumps if isinstance(p.get("PumpSpeedPercent"), Mapping)
                              and p["PumpSpeedPercent"].get("Reading") is not None)]
        if speeds:
            values["pump_speed_pct"] = sum(speeds) / len(speeds)
    except _Bad as exc:
        ctx.reject(rid, str(exc))
        return
    if all(math.isnan(v) for v in values.values()):
        ctx.reject(rid, COOLING_UNIT_LINKS_ONLY)
        return
    cdu_id = doc.get("Id")
    if not isinstance(cdu_id, str) or not cdu_id:
        ctx.reject(rid, "CoolingUnit without an Id (the facility's CDU id)")
        return
    ctx.result.equipment_batches.append(EquipmentBatch(
        site_id=ctx.site_id, sample_time=ctx.received_time, sequence=0, source="redfish",
        samples=[EquipmentSample("cdu", cdu_id, values)]))


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
