"""Redfish resources (DMTF DSP0268 / DSP2046) → RackTelemetryBatch protobufs with RackSamples.

Pure: a decoded JSON document in, batches plus reasons out; no I/O.

Which rack a resource measures is never guessed: the caller gives ``rack_of_resource``, a mapping
from Redfish ``@odata.id`` prefixes to rack ids (``RedfishRackMap``; a plain dict or a callable
works too, see ``as_rack_map``). The longest prefix that matches on a path-segment boundary
wins, e.g. ``{"/redfish/v1/PowerEquipment/RackPDUs/1": "su1-0003",
"/redfish/v1/ThermalEquipment/CDUs/1": ["su1-0003", "su1-0004"]}`` (a CDU serving two racks gives
one batch per rack). A MetricReport value is mapped through the resource part of its
``MetricProperty`` (before ``#``).

What a mapped resource means: **every power value of a mapped resource is taken as that rack's
input power**, so map the resources that measure whole-rack input: a rack PDU (its Mains circuits,
its PowerDistributionMetrics), a floor-PDU branch/outlet that feeds the rack, a rack-level chassis.
One guard: an ``Outlet``, a ``Branch`` circuit or an outlet power Sensor (PhysicalContext
PowerOutlet) reached only through a *prefix* (its rack PDU was mapped) measures a load inside the
rack, so it is rejected; map its own ``@odata.id`` to declare it a rack feed.

Field mapping (RackSamples):

    pdu_input_power_w        PowerDistributionMetrics/Outlet/Circuit/EnvironmentMetrics
                             ``PowerWatts.Reading``; Circuit/Outlet ``PolyPhasePowerWatts``
                             (LineNToNeutral, else the line-to-line pairs); legacy Power
                             ``PowerControl[].PowerConsumedWatts``; Sensor ReadingType Power [W];
                             MetricReport ``PowerConsumedWatts``/``AverageConsumedWatts``/``PowerWatts/Reading``
    inlet_air_temp_c         ThermalMetrics ``TemperatureSummaryCelsius.Intake``; legacy Thermal
                             Temperatures[PhysicalContext=Intake]; Sensor Temperature [Cel] Intake
    outlet_air_temp_c        the same with Exhaust
    coolant_supply_temp_c    CoolantConnector ``SupplyTemperatureCelsius``; Sensor Temperature LiquidInlet
    coolant_return_temp_c    CoolantConnector ``ReturnTemperatureCelsius``; Sensor Temperature LiquidOutlet
    coolant_flow_lpm         CoolantConnector ``FlowLitersPerMinute``; Sensor LiquidFlowLPM [L/min]

``pdu_input_power_w`` shape: length 3 = lines L1, L2, L3 (NaN for a line the resource does not
report); length 1 = a total whose phase split is unknown. When a resource gives only a total
``PowerWatts`` plus ``PolyPhaseCurrentAmps`` for two or more lines, the total is split in
proportion to the line currents (assumes equal voltage and power factor per line: an
approximation). Several mapped power resources of one rack inside one document (a MetricReport
with two feeds at one timestamp) are summed. RackSamples scalars the document does not carry are
NaN (proto3 has no presence; NaN = "not in this batch"), never 0.

Rejections (each with a reason; nothing is dropped silently): a body that is not a JSON object,
a missing/unknown ``@odata.type``, resources without telemetry (collections, definitions,
pumps, filters, leak detectors: their reason says why), non-numeric readings (MetricValue is a
JSON *string* per the schema and must parse as a finite decimal number), unit mismatches
(Sensor ``ReadingUnits`` must be the UCUM unit of its ReadingType: ``Cel``, ``W``, ``L/min``; the
DMTF mockups' ``C`` is UCUM for coulomb and is rejected), resources with no rack mapping, and a
CDU's primary (facility-side) coolant connector. A result can hold batches *and* rejections
(e.g. a MetricReport with one unmapped chassis).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from twin.telemetry.v1 import telemetry_pb2

SOURCE = "redfish"

# --------------------------------------------------------------------------------------------
# rack mapping


class RedfishRackMap:
    """Explicit ``@odata.id`` prefix → rack id(s) mapping (longest segment-boundary prefix wins)."""

    def __init__(self, mapping: Mapping[str, str | Sequence[str]]) -> None:
        self._map: dict[str, tuple[str, ...]] = {}
        for prefix, racks in mapping.items():
            key = _norm_id(prefix)
            if not key.startswith("/redfish/"):
                raise ValueError(f"Redfish prefix must start with /redfish/: {prefix!r}")
            rack_ids = (racks,) if isinstance(racks, str) else tuple(racks)
            if not rack_ids or not all(isinstance(r, str) and r for r in rack_ids):
                raise ValueError(f"rack ids for {prefix!r} must be non-empty strings: {racks!r}")
            self._map[key] = rack_ids

    def resolve(self, odata_id: str) -> tuple[tuple[str, ...], bool] | None:
        """(rack ids, exact) for a resource id, or None. ``exact``: the key is the id itself."""
        rid = _norm_id(odata_id)
        probe = rid
        while probe:
            if probe in self._map:
                return self._map[probe], probe == rid
            cut = probe.rfind("/")
            if cut <= 0:
                break
            probe = probe[:cut]
        return None


class _CallableRackMap:
    def __init__(self, fn: Callable[[str], Any]) -> None:
        self._fn = fn

    def resolve(self, odata_id: str) -> tuple[tuple[str, ...], bool] | None:
        got = self._fn(_norm_id(odata_id))
        if got is None:
            return None
        racks = (got,) if isinstance(got, str) else tuple(got)
        return (racks, True) if racks else None  # a callable answers per id: treated as explicit


RackOfResource = RedfishRackMap | Mapping[str, str | Sequence[str]] | Callable[[str], Any]


def as_rack_map(rack_of_resource: RackOfResource) -> RedfishRackMap | _CallableRackMap:
    if isinstance(rack_of_resource, (RedfishRackMap, _CallableRackMap)):
        return rack_of_resource
    if isinstance(rack_of_resource, Mapping):
        return RedfishRackMap(rack_of_resource)
    if callable(rack_of_resource):
        return _CallableRackMap(rack_of_resource)
    raise TypeError(f"rack_of_resource must be a mapping or a callable, got {type(rack_of_resource).__name__}")


def _norm_id(odata_id: str) -> str:
    path = odata_id.split("#", 1)[0]
    return path.rstrip("/") if len(path) > 1 else path


# --------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class Rejection:
    where: str  # @odata.id (or MetricProperty) of the rejected part, or "body"
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class RedfishResult:
    resource_type: str = ""
    odata_id: str = ""
    batches: list[telemetry_pb2.RackTelemetryBatch] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """All rejection reasons in one line (for the DLQ and HTTP 400 bodies)."""
        return "; ".join(str(r) for r in self.rejections)


class RedfishError(ValueError):
    pass


# --------------------------------------------------------------------------------------------
# parsing


_TYPE_RE = re.compile(r"#([A-Za-z0-9]+)(?:\.v\d+_\d+_\d+)?\.([A-Za-z0-9]+)$")

_NO_TELEMETRY = {
    "TelemetryService": "TelemetryService root holds links and capabilities, no readings",
    "MetricReportDefinition": "MetricReportDefinition configures reports; POST the MetricReport it produces",
    "MetricDefinition": "MetricDefinition describes a metric; it carries no readings",
    "Triggers": "Triggers holds thresholds, not readings",
    "PowerDistribution": "PowerDistribution describes the PDU; its readings are in its Metrics and Mains circuits",
    "CoolingUnit": (
        "CoolingUnit holds links and status only; its readings are in its SecondaryCoolantConnectors "
        "(pump failures and Status.Conditions are events, not RackSamples telemetry)"
    ),
    "ThermalSubsystem": "ThermalSubsystem holds links only; POST its ThermalMetrics",
    "Pump": "Pump speed (PumpSpeedPercent) has no RackSamples field; coolant flow comes from CoolantConnector",
    "Filter": "Filter service hours have no RackSamples field",
    "Reservoir": "Reservoir level has no RackSamples field",
    "LeakDetector": "LeakDetector state is an event (cooling.events), not RackSamples telemetry",
}


def parse_redfish_bytes(raw: bytes, *, rack_of_resource: RackOfResource, received_time: datetime,
                        site_id: str = "") -> RedfishResult:
    """Decode UTF-8 JSON and parse; an undecodable body gives a result with one 'body' rejection."""
    import json

    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return RedfishResult(rejections=[Rejection("body", f"body is not UTF-8: {exc.reason} at byte {exc.start}")])
    except json.JSONDecodeError as exc:
        return RedfishResult(rejections=[Rejection("body", f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")])
    return parse_redfish(doc, rack_of_resource=rack_of_resource, received_time=received_time, site_id=site_id)


def parse_redfish(doc: Any, *, rack_of_resource: RackOfResource, received_time: datetime,
                  site_id: str = "") -> RedfishResult:
    """Map one decoded Redfish resource to batches (one per rack, per timestamp for MetricReports).

    ``received_time`` stamps resources that carry no timestamp of their own.
    """
    if not isinstance(doc, dict):
        return RedfishResult(rejections=[Rejection("body", f"expected a JSON object, got {type(doc).__name__}")])
    otype = doc.get("@odata.type")
    odata_id = doc.get("@odata.id")
    result = RedfishResult(odata_id=odata_id if isinstance(odata_id, str) else "")
    where = result.odata_id or "body"
    if not isinstance(otype, str):
        result.rejections.append(Rejection(where, "missing @odata.type"))
        return result
    m = _TYPE_RE.fullmatch(otype)
    if not m:
        result.rejections.append(Rejection(where, f"malformed @odata.type {otype!r}"))
        return result
    namespace, tname = m.group(1), m.group(2)
    result.resource_type = tname
    if tname.endswith("Collection"):
        result.rejections.append(Rejection(where, f"{tname} is a collection of links, it carries no readings"))
        return result
    if namespace != tname:
        result.rejections.append(Rejection(where, f"unknown @odata.type {otype!r}"))
        return result
    if not isinstance(odata_id, str) or not odata_id.startswith("/redfish/"):
        result.rejections.append(Rejection("body", f"{tname} without a valid @odata.id (needed to map it to a rack)"))
        return result
    ctx = _Ctx(as_rack_map(rack_of_resource), received_time, site_id, result)
    if tname in _NO_TELEMETRY:
        result.rejections.append(Rejection(where, _NO_TELEMETRY[tname]))
    elif tname == "MetricReport":
        _metric_report(doc, ctx)
    elif tname in _HANDLERS:
        _HANDLERS[tname](doc, ctx)
    else:
        result.rejections.append(Rejection(where, f"unsupported resource type {otype!r}"))
    return result


# --------------------------------------------------------------------------------------------
# accumulation


_SCALARS = ("inlet_air_temp_c", "outlet_air_temp_c", "coolant_supply_temp_c", "coolant_return_temp_c",
            "coolant_flow_lpm")


@dataclass
class _RackAcc:
    scalars: dict[str, float] = field(default_factory=dict)
    power: list[list[float]] = field(default_factory=list)  # one entry per power resource


@dataclass
class _Ctx:
    racks: Any
    received_time: datetime
    site_id: str
    result: RedfishResult
    # (rack, timestamp) -> accumulated values
    acc: dict[tuple[str, datetime], _RackAcc] = field(default_factory=dict)

    def reject(self, where: str, reason: str) -> None:
        self.result.rejections.append(Rejection(where, reason))

    def racks_of(self, odata_id: str, *, load: bool = False) -> tuple[str, ...] | None:
        got = self.racks.resolve(odata_id)
        if got is None:
            self.reject(odata_id, "no rack mapping for this resource (rack_of_resource has no matching prefix)")
            return None
        racks, exact = got
        if load and not exact:
            self.reject(odata_id, "measures a load inside the rack (outlet/branch of a mapped PDU), not the rack "
                                  "input; map its @odata.id explicitly to use it as a rack feed")
            return None
        return racks

    def put(self, racks: Sequence[str], when: datetime, name: str, value: float) -> None:
        for rack in racks:
            self.acc.setdefault((rack, when), _RackAcc()).scalars[name] = value

    def put_power(self, racks: Sequence[str], when: datetime, phases: list[float]) -> None:
        for rack in racks:
            self.acc.setdefault((rack, when), _RackAcc()).power.append(list(phases))

    def flush(self) -> None:
        for (rack, when), acc in sorted(self.acc.items()):
            rs = telemetry_pb2.RackSamples(pdu_input_power_w=_sum_power(acc.power))
            for name in _SCALARS:
                setattr(rs, name, acc.scalars.get(name, math.nan))
            b = telemetry_pb2.RackTelemetryBatch(site_id=self.site_id, rack_id=rack, source=SOURCE, rack=rs)
            b.sample_time.FromDatetime(when)
            self.result.batches.append(b)


def _sum_power(entries: list[list[float]]) -> list[float]:
    if not entries:
        return []
    if len(entries) == 1:
        return entries[0]
    if all(len(e) == 3 for e in entries):
        return [_nansum(e[i] for e in entries) for i in range(3)]
    return [_nansum(_nansum(e) for e in entries)]


def _nansum(values: Any) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return math.fsum(vals) if vals else math.nan


# --------------------------------------------------------------------------------------------
# value helpers


class _Bad(Exception):
    pass


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"{what} is not a number: {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise _Bad(f"{what} is not finite: {value!r}")
    return v


def _reading(doc: Mapping[str, Any], prop: str) -> float | None:
    """``doc[prop].Reading`` as a float; None when the property is absent or has no Reading."""
    obj = doc.get(prop)
    if obj is None:
        return None
    if not isinstance(obj, Mapping):
        raise _Bad(f"{prop} is not an object")
    if obj.get("Reading") is None:
        return None
    return _number(obj["Reading"], f"{prop}.Reading")


_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_TS = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$"
)


def parse_timestamp(text: Any) -> datetime:
    """ISO 8601 (Redfish Edm.DateTimeOffset) → aware UTC datetime; fractions beyond µs are truncated."""
    if not isinstance(text, str):
        raise _Bad(f"timestamp is not a string: {text!r}")
    m = _TS.fullmatch(text.strip())
    if not m:
        raise _Bad(f"timestamp {text!r} is not ISO 8601 with an offset")
    y, mo, d, h, mi, s, frac, off = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=UTC)
    except ValueError as exc:
        raise _Bad(f"timestamp {text!r}: {exc}") from exc
    if off != "Z":
        sign = 1 if off[0] == "+" else -1
        dt -= sign * timedelta(hours=int(off[1:3]), minutes=int(off[4:6]))
    return dt


def _metric_value(value: Any) -> float:
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value.strip()):
            raise _Bad(f"MetricValue {value!r} is not a decimal number")
        v = float(value)
        if not math.isfinite(v):
            raise _Bad(f"MetricValue {value!r} is not finite")
        return v
    if value is None:
        raise _Bad("MetricValue is null")
    # The schema types MetricValue as a string; a bare JSON number is unambiguous, so it is accepted.
    return _number(value, "MetricValue")


# --------------------------------------------------------------------------------------------
# MetricReport

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


# --------------------------------------------------------------------------------------------
# power resources

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


# --------------------------------------------------------------------------------------------
# thermal / cooling resources


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


_HANDLERS: dict[str, Callable[[Mapping[str, Any], _Ctx], None]] = {
    "PowerDistributionMetrics": _pdm,
    "Outlet": _outlet,
    "Circuit": _circuit,
    "EnvironmentMetrics": _environment_metrics,
    "Power": _legacy_power,
    "CoolantConnector": _coolant_connector,
    "ThermalMetrics": _thermal_metrics,
    "Thermal": _legacy_thermal,
    "Sensor": _sensor,
}
