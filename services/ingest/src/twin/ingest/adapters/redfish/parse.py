"""Entry points: one decoded Redfish resource (or its raw bytes) → RedfishResult."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from twin.core.http import MAX_JSON_DEPTH, json_depth
from twin.ingest.adapters.redfish.accumulate import _Ctx
from twin.ingest.adapters.redfish.metric_report import _metric_report
from twin.ingest.adapters.redfish.power import _circuit, _environment_metrics, _legacy_power, _outlet, _pdm
from twin.ingest.adapters.redfish.racks import RackOfResource, as_rack_map
from twin.ingest.adapters.redfish.results import RedfishResult, Rejection
from twin.ingest.adapters.redfish.sensor import _sensor
from twin.ingest.adapters.redfish.thermal import (
    _coolant_connector,
    _cooling_unit,
    _legacy_thermal,
    _thermal_metrics,
)

_TYPE_RE = re.compile(r"#([A-Za-z0-9]+)(?:\.v\d+_\d+_\d+)?\.([A-Za-z0-9]+)$")

_NO_TELEMETRY = {
    "TelemetryService": "TelemetryService root holds links and capabilities, no readings",
    "MetricReportDefinition": "MetricReportDefinition configures reports; POST the MetricReport it produces",
    "MetricDefinition": "MetricDefinition describes a metric; it carries no readings",
    "Triggers": "Triggers holds thresholds, not readings",
    "PowerDistribution": "PowerDistribution describes the PDU; its readings are in its Metrics and Mains circuits",
    "ThermalSubsystem": "ThermalSubsystem holds links only; POST its ThermalMetrics",
    "Pump": "Pump speed (PumpSpeedPercent) has no RackSamples field; coolant flow comes from CoolantConnector",
    "Filter": "Filter service hours have no RackSamples field",
    "Reservoir": "Reservoir level has no RackSamples field",
    "LeakDetector": "LeakDetector state is an event (cooling.events), not RackSamples telemetry",
}


def parse_redfish_bytes(raw: bytes, *, rack_of_resource: RackOfResource, received_time: datetime,
                        site_id: str = "") -> RedfishResult:
    """Decode UTF-8 JSON and parse; an undecodable or too deeply nested body gives one 'body' rejection."""
    if json_depth(raw, MAX_JSON_DEPTH + 1) > MAX_JSON_DEPTH:
        return RedfishResult(rejections=[Rejection("body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")])
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
    elif tname == "CoolingUnit":
        _cooling_unit(doc, ctx)
    elif tname == "MetricReport":
        _metric_report(doc, ctx)
    elif tname in _HANDLERS:
        _HANDLERS[tname](doc, ctx)
    else:
        result.rejections.append(Rejection(where, f"unsupported resource type {otype!r}"))
    return result


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
