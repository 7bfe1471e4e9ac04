"""MetricReport (DSP0268 TelemetryService): one value per MetricProperty and timestamp."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from twin.ingest.adapters.redfish.accumulate import _Ctx
from twin.ingest.adapters.redfish.racks import _norm_id
from twin.ingest.adapters.redfish.values import _Bad, _metric_value, parse_timestamp

# MetricProperty JSON-pointer tail → (kind, field); kind "power" goes to pdu_input_power_w.
_REPORT_PROPS: dict[tuple[str, ...], tuple[str, str]] = {
    ("PowerConsumedWatts",): ("power", ""),
    ("PowerMetrics", "AverageConsumedWatts"): ("power", ""),
    ("PowerWatts", "Reading"): ("power", ""),
    ("SupplyTemperatureCelsius", "Reading"): ("scalar", "coolant_supply_temp_c"),
    ("ReturnTemperatureCelsius", "Reading"): ("scalar", "coolant_return_temp_c"),
    ("FlowLitersPerMinute", "Reading"): ("scalar", "coolant_flow_lpm"),
    ("TemperatureSummaryCelsius", "Intake", "Reading"): ("scalar", "inlet_air_temp_c"),
    ("TemperatureSummaryCelsius", "Exhaust", "Reading"): ("scalar", "outlet_air_temp_c"),
}
_STAT_PROPS = {"MinConsumedWatts", "MaxConsumedWatts"}


def _classify_property(pointer: str) -> tuple[str, str] | str:
    parts = tuple(p for p in pointer.split("/") if p)
    for tail, target in _REPORT_PROPS.items():
        if parts[-len(tail):] == tail:
            return target
    if parts and parts[-1] in _STAT_PROPS:
        return (f"{parts[-1]} is an interval statistic; only PowerConsumedWatts/AverageConsumedWatts "
                "feed the rack power")
    if parts == ("Reading",):
        return "a bare Sensor Reading has no ReadingType/units here; POST the Sensor resource instead"
    return f"property {pointer!r} has no RackSamples field"


def _metric_report(doc: Mapping[str, Any], ctx: _Ctx) -> None:
    rid = ctx.result.odata_id
    values = doc.get("MetricValues")
    if not isinstance(values, list):
        ctx.reject(rid, "MetricReport without a MetricValues array")
        return
    if not values:
        ctx.reject(rid, "MetricReport with no MetricValues")
        return
    default_time = ctx.received_time
    if doc.get("Timestamp") is not None:
        try:
            default_time = parse_timestamp(doc["Timestamp"])
        except _Bad as exc:
            ctx.reject(rid, f"report {exc}")
            return
    seen: set[tuple[str, str, datetime]] = set()
    for i, mv in enumerate(values):
        where = f"{rid}#/MetricValues/{i}"
        if not isinstance(mv, Mapping):
            ctx.reject(where, "MetricValues entry is not an object")
            continue
        prop = mv.get("MetricProperty")
        if not isinstance(prop, str) or "#" not in prop:
            ctx.reject(where, f"MetricProperty {prop!r} is not '<@odata.id>#/<property>' (MetricId "
                              f"{mv.get('MetricId')!r} alone names no resource)")
            continue
        resource, pointer = prop.split("#", 1)
        where = f"{where} ({prop})"
        target = _classify_property(pointer)
        if isinstance(target, str):
            ctx.reject(where, target)
            continue
        try:
            value = _metric_value(mv.get("MetricValue"))
            when = parse_timestamp(mv["Timestamp"]) if mv.get("Timestamp") is not None else default_time
        except _Bad as exc:
            ctx.reject(where, str(exc))
            continue
        kind, name = target
        if kind == "power" and value < 0:
            ctx.reject(where, f"negative power {value} W")
            continue
        key = (_norm_id(resource), kind + name, when)
        if key in seen:
            ctx.reject(where, "duplicate value for this resource, property and timestamp")
            continue
        seen.add(key)
        got = ctx.racks.resolve(resource)
        if got is None:
            ctx.reject(where, "no rack mapping for this resource (rack_of_resource has no matching prefix)")
            continue
        racks = got[0]
        if kind == "power":
            ctx.put_power(racks, when, [value])
        else:
            ctx.put(racks, when, name, value)
    ctx.flush()
