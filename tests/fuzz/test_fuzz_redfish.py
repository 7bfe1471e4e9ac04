"""Fuzz: Redfish JSON (twin.ingest.adapters.redfish.parse_redfish_bytes / parse_redfish).

Documented behaviour: never raises for any body; an undecodable, non-object, too deeply nested or
unmappable body gives a RedfishResult with `rejections` (each with a reason), and whatever batches
it gives encode through the codec.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from twin.ingest.adapters.redfish import RedfishResult, parse_redfish, parse_redfish_bytes

from ._support import FUZZ, tried

RECEIVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RACKS = {
    "/redfish/v1/PowerEquipment/RackPDUs/1": "r1-0000",
    "/redfish/v1/ThermalEquipment/CDUs/1": ["r1-0000", "r1-0001"],
    "/redfish/v1/Chassis/1": "r1-0004",
    "/redfish/v1/Chassis/1/Sensors/Outlet": "r1-0005",
}
TYPES = ["PowerDistributionMetrics", "EnvironmentMetrics", "Circuit", "Outlet", "Power", "Thermal",
         "ThermalMetrics", "CoolantConnector", "Sensor", "MetricReport", "PowerDistribution", "CoolingUnit",
         "Pump", "Filter", "LeakDetector", "TelemetryService", "MetricReportDefinition", "Triggers",
         "CircuitCollection", "Chassis", "Bogus"]
KEYS = ["PowerWatts", "Reading", "ReadingCelsius", "ReadingTime", "Timestamp", "PolyPhasePowerWatts",
        "PolyPhaseCurrentAmps", "Line1ToNeutral", "Line2ToNeutral", "Line3ToNeutral", "Line1ToLine2",
        "Line2ToLine3", "Line3ToLine1", "Line1", "Line2", "Line3", "PowerControl", "PowerConsumedWatts",
        "AverageConsumedWatts", "MinConsumedWatts", "MaxConsumedWatts", "Temperatures", "PhysicalContext",
        "TemperatureSummaryCelsius", "Intake", "Exhaust", "Internal", "SupplyTemperatureCelsius",
        "ReturnTemperatureCelsius", "FlowLitersPerMinute", "ReadingType", "ReadingUnits", "CircuitType",
        "ElectricalContext", "MetricValues", "MetricProperty", "MetricValue", "MetricId", "Mains",
        "CoolantConnectorType", "Status", "@odata.id", "@odata.type", "Id", "Name"]
STRINGS = ["12.5", "-1", "0", "1e999", "NaN", "Infinity", "", " 7 ", "0x10", "1_000", "٣", "Cel", "C", "W",
           "L/min", "Intake", "Exhaust", "LiquidInlet", "LiquidOutlet", "PowerOutlet", "Temperature", "Power",
           "LiquidFlowLPM", "Mains", "Branch", "Feeder", "Subfeed", "Primary", "Secondary", "Line1ToNeutral",
           "2026-01-02T03:04:05Z", "2026-01-02T03:04:05.123456789+01:00", "2026-13-45T99:99:99Z",
           "+275760-09-13T00:00:00Z", "0000-00-00T00:00:00Z", "9999-12-31T23:59:59-23:59", "1767323045",
           "2026-01-02", "2026-01-02T03:04:05", "/redfish/v1/Chassis/1#/PowerWatts/Reading",
           "/redfish/v1/PowerEquipment/RackPDUs/1/Metrics#/PowerWatts/Reading",
           "/redfish/v1/ThermalEquipment/CDUs/1#/SupplyTemperatureCelsius/Reading"]


def odata_types() -> st.SearchStrategy[str]:
    name = st.sampled_from(TYPES)
    return st.one_of(
        name.map(lambda t: f"#{t}.v1_3_0.{t}"), name.map(lambda t: f"#{t}.{t}"),
        st.tuples(name, name).map(lambda p: f"#{p[0]}.v1_0_0.{p[1]}"),
        st.sampled_from(["", "#", "PowerDistributionMetrics", "#Sensor.v1_x_0.Sensor", "#.v1_0_0."]),
        st.text(max_size=12))


def odata_ids() -> st.SearchStrategy[str]:
    suffix = st.sampled_from(["", "/Metrics", "/Mains/1", "/Outlets/A1", "/Branches/B", "/Sensors/T1",
                              "/SecondaryCoolantConnectors/1", "/PrimaryCoolantConnectors/1", "1", "/../2"])
    return st.one_of(st.tuples(st.sampled_from(list(RACKS)), suffix).map("".join),
                     st.sampled_from(["/redfish/v1/Chassis/2", "/", ""]), st.text(max_size=12))


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(STRINGS), st.text(max_size=10))


def json_values(max_leaves: int = 8) -> st.SearchStrategy:
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), children, max_size=5)),
        max_leaves=max_leaves)


JSON = json_values()
JSON_SMALL = json_values(3)
JSON_MEDIUM = json_values(4)
ODATA_IDS = odata_ids()
ODATA_TYPES = odata_types()
MV_KEYS = st.sampled_from(["MetricProperty", "MetricValue", "Timestamp", "MetricId"])
PROPERTY_SUFFIX = st.sampled_from(["#/PowerWatts/Reading", "#/PowerConsumedWatts", "#",
                                   "#/TemperatureSummaryCelsius/Intake/Reading"])
DOC_FIELDS = st.dictionaries(st.sampled_from(KEYS), JSON, max_size=5)


@st.composite
def metric_values(draw) -> list:
    out = []
    for _ in range(draw(st.integers(0, 5))):
        item = draw(st.dictionaries(MV_KEYS, JSON_SMALL, max_size=4))
        if draw(st.booleans()):
            item["MetricProperty"] = draw(st.sampled_from(STRINGS[-3:])) if draw(st.booleans()) else \
                draw(ODATA_IDS) + draw(PROPERTY_SUFFIX)
            item["MetricValue"] = draw(st.one_of(st.sampled_from(STRINGS[:12]), scalars))
            item["Timestamp"] = draw(st.one_of(st.sampled_from(STRINGS[28:38]), scalars))
        out.append(item)
    return out


METRIC_VALUES = metric_values()


@st.composite
def resources(draw) -> dict:
    doc = draw(DOC_FIELDS)
    if draw(st.integers(0, 9)):
        doc["@odata.type"] = draw(ODATA_TYPES)
    if draw(st.integers(0, 9)):
        doc["@odata.id"] = draw(ODATA_IDS)
    if "MetricReport" in str(doc.get("@odata.type")) or draw(st.integers(0, 4)) == 0:
        doc["MetricValues"] = draw(st.one_of(METRIC_VALUES, JSON_MEDIUM))
    return doc


def _check(result: RedfishResult) -> None:
    assert isinstance(result, RedfishResult)
    for rej in result.rejections:
        assert str(rej)
    for batch in result.batches:  # encoded by the codec
        batch.SerializeToString()
        assert not any(math.isinf(v) for v in batch.rack.pdu_input_power_w)


@FUZZ
@given(resources())
def test_parse_redfish_never_raises_on_documents(doc: dict) -> None:
    tried("redfish_doc")
    _check(parse_redfish(doc, rack_of_resource=RACKS, received_time=RECEIVED, site_id="s"))


@FUZZ
@given(st.one_of(
    resources().map(lambda d: json.dumps(d).encode()),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
))
def test_parse_redfish_bytes_never_raises(raw: bytes) -> None:
    tried("redfish_bytes")
    result = parse_redfish_bytes(raw, rack_of_resource=RACKS, received_time=RECEIVED, site_id="s")
    _check(result)
    if not result.batches:
        assert result.rejections  # nothing accepted means a reason was given
