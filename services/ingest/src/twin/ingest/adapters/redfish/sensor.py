"""Sensor resources (ReadingType Temperature, Power, LiquidFlowLPM with UCUM units); part of the
original thermal/cooling section, split out because a Sensor also carries power."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from twin.ingest.adapters.redfish.accumulate import _Ctx
from twin.ingest.adapters.redfish.values import _Bad, _not_a_string, _number, parse_timestamp

# ReadingType → (UCUM unit required, RackSamples target or None)
_SENSOR_UNITS = {"Temperature": "Cel", "Power": "W", "LiquidFlowLPM": "L/min"}
_TEMP_CONTEXT = {
    "Intake": "inlet_air_temp_c",
    "Exhaust": "outlet_air_temp_c",
    "LiquidInlet": "coolant_supply_temp_c",
    "LiquidOutlet": "coolant_return_temp_c",
}
_LINE_INDEX = {"Line1": 0, "Line2": 1, "Line3": 2, "Line1ToNeutral": 0, "Line2ToNeutral": 1,
               "Line3ToNeutral": 2, "Line1ToLine2": 0, "Line2ToLine3": 1, "Line3ToLine1": 2}


def _sensor(doc: Mapping[str, Any], ctx: _Ctx) -> None:
    rid = ctx.result.odata_id
    # fuzz find: ReadingType [] crashed the table lookup (unhashable)
    bad = _not_a_string(doc, "ReadingType", "ReadingUnits", "PhysicalContext", "ElectricalContext")
    if bad is not None:
        ctx.reject(rid, f"Sensor {bad}")
        return
    rtype = doc.get("ReadingType")
    units = doc.get("ReadingUnits")
    if rtype not in _SENSOR_UNITS:
        ctx.reject(rid, f"Sensor ReadingType {rtype!r} has no RackSamples field")
        return
    if units != _SENSOR_UNITS[rtype]:
        ctx.reject(rid, f"unit mismatch: ReadingType {rtype} needs ReadingUnits {_SENSOR_UNITS[rtype]!r} (UCUM), "
                        f"got {units!r}")
        return
    if doc.get("Reading") is None:
        ctx.reject(rid, "Sensor without a Reading")
        return
    try:
        value = _number(doc["Reading"], "Reading")
        when = parse_timestamp(doc["ReadingTime"]) if doc.get("ReadingTime") is not None else ctx.received_time
    except _Bad as exc:
        ctx.reject(rid, str(exc))
        return
    context = doc.get("PhysicalContext")
    if rtype == "Temperature":
        name = _TEMP_CONTEXT.get(context)
        if name is None:
            ctx.reject(rid, f"Temperature sensor with PhysicalContext {context!r} is not a rack inlet/outlet air or "
                            "coolant temperature (needs Intake, Exhaust, LiquidInlet or LiquidOutlet)")
            return
        racks = ctx.racks_of(rid)
        if racks is None:
            return
        ctx.put(racks, when, name, value)
    elif rtype == "LiquidFlowLPM":
        if value < 0:
            ctx.reject(rid, f"negative coolant flow {value} L/min")
            return
        racks = ctx.racks_of(rid)
        if racks is None:
            return
        ctx.put(racks, when, "coolant_flow_lpm", value)
    else:  # Power
        if value < 0:
            ctx.reject(rid, f"negative power {value} W")
            return
        racks = ctx.racks_of(rid, load=context == "PowerOutlet")
        if racks is None:
            return
        line = _LINE_INDEX.get(doc.get("ElectricalContext"))
        phases = [value] if line is None else [value if i == line else math.nan for i in range(3)]
        ctx.put_power(racks, when, phases)
    ctx.flush()
