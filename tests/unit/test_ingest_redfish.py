"""Redfish resources → RackSamples batches. Every real feed file is either mapped or rejected with a reason."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime

import pytest

from twin.core.validation_data import validation_dir
from twin.ingest.adapters import redfish
from twin.ingest.adapters.redfish import RedfishRackMap, parse_redfish, parse_redfish_bytes, parse_timestamp

RECEIVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
NAN = math.nan


# The mapping a site would configure: the rack PDU and the rack-side CDU serve r1-0000 (the CDU also
# serves r1-0001); two server trays sit in r1-0002; three resources of chassis 1U are declared one by one.
RACKS = {
    "/redfish/v1/PowerEquipment/RackPDUs/1": "r1-0000",
    "/redfish/v1/Chassis/PDU": "r1-0000",
    "/redfish/v1/ThermalEquipment/CDUs/1": ["r1-0000", "r1-0001"],
    "/redfish/v1/Chassis/CDU": "r1-0000",
    "/redfish/v1/Chassis/Tray_1": "r1-0002",
    "/redfish/v1/Chassis/Tray_2": "r1-0002",
    "/redfish/v1/Chassis/1U/ThermalSubsystem/ThermalMetrics": "r1-0003",
    "/redfish/v1/Chassis/1U/Thermal": "r1-0003",
    "/redfish/v1/Chassis/1U/Power": "r1-0003",
    "/redfish/v1/Chassis/1": "r1-0004",
}

FIELDS = ("pdu_input_power_w", "inlet_air_temp_c", "outlet_air_temp_c", "coolant_supply_temp_c",
          "coolant_return_temp_c", "coolant_flow_lpm")


def row(rack, when, power=(), inlet=NAN, outlet=NAN, supply=NAN, ret=NAN, flow=NAN):
    return (rack, when, list(power), inlet, outlet, supply, ret, flow)


R = "2026-01-02T03:04:05Z"  # resources without their own timestamp get the receive time

MAPPED: dict[str, list[tuple]] = {
    "cdu-secondary-coolantconnector.json": [row("r1-0000", R, supply=30, ret=48, flow=42),
                                            row("r1-0001", R, supply=30, ret=48, flow=42)],
    "cdu-sensor-primary-flow.json": [row("r1-0000", R, flow=42)],
    "cdu-sensor-primary-supply-temp.json": [row("r1-0000", R, supply=30)],
    "dsp2046-coolantconnector.json": [row("r1-0000", R, supply=14.8, ret=38.2, flow=24.3),
                                      row("r1-0001", R, supply=14.8, ret=38.2, flow=24.3)],
    "dsp2046-metricreport.json": [row("r1-0002", "2016-11-08T17:25:00Z", [100]),
                                  row("r1-0002", "2016-11-08T18:25:00Z", [94]),
                                  row("r1-0002", "2016-11-08T19:25:00Z", [100])],
    "dsp2046-powerdistributionmetrics.json": [row("r1-0000", R, [6438])],
    "dsp2046-thermalmetrics.json": [row("r1-0003", R, inlet=24.8, outlet=40.5)],
    "lcserver-thermalmetrics.json": [row("r1-0003", R, inlet=24.8, outlet=40.5)],
    "pdu-rackpdu1-mains-ac1.json": [row("r1-0000", R, [198.4, 231.5, 58.1])],
    "pdu-rackpdu1-metrics.json": [row("r1-0000", R, [6438])],
    "rackmount-power-legacy.json": [row("r1-0003", R, [344])],
    "rackmount-thermal-legacy.json": [row("r1-0003", R, inlet=25)],
    # Tray_1 + Tray_2 are both in r1-0002: summed per timestamp
    "telemetry-metricreport-platformpowerusage.json": [row("r1-0002", "2016-11-08T17:25:00Z", [206]),
                                                       row("r1-0002", "2016-11-08T18:25:00Z", [212]),
                                                       row("r1-0002", "2016-11-08T19:25:00Z", [214])],
    # nanosecond fraction and +02:00 offset; averages of both trays (2.1 + 2.1)
    "telemetry-metricreport-powermetrics.json": [row("r1-0002", "2016-07-25T09:27:59.795513Z", [4.2])],
    "telemetry-metricreport-powermetricstats.json": [row("r1-0002", "2016-11-08T17:25:00Z", [88])],
}

STAT = "is an interval statistic; only PowerConsumedWatts/AverageConsumedWatts feed the rack power"
NO_MAP = "no rack mapping for this resource"
LOAD = "measures a load inside the rack (outlet/branch of a mapped PDU), not the rack input"
COLLECTION = "is a collection of links, it carries no readings"
MRD = "MetricReportDefinition configures reports; POST the MetricReport it produces"
PUMP = "Pump speed (PumpSpeedPercent) has no RackSamples field"

# file -> reasons of its rejections, in order (files that also map list their partial rejections)
REJECTED: dict[str, list[str]] = {
    "cdu-coolingunit.json": ["CoolingUnit holds links and status only"],
    "cdu-environmentmetrics.json": ["EnvironmentMetrics without PowerWatts"],
    "cdu-filter.json": ["Filter service hours have no RackSamples field"],
    "cdu-leakdetector-moisture.json": ["LeakDetector state is an event"],
    "cdu-primary-coolantconnector.json": ["primary (facility-side) coolant connector of a CDU"],
    "cdu-pump-1.json": [PUMP],
    "cdu-pump-2.json": [PUMP],
    "cdu-reservoir.json": ["Reservoir level has no RackSamples field"],
    "cdu-sensor-secondary-delta-pressure.json": ["Sensor ReadingType 'PressurekPa' has no RackSamples field"],
    "cdu-sensor-secondary-heatload.json": ["Sensor ReadingType 'Heat' has no RackSamples field"],
    "cdu-sensors-collection.json": ["SensorCollection " + COLLECTION],
    "dsp2046-circuit.json": [LOAD],
    "dsp2046-coolingunit.json": ["CoolingUnit holds links and status only"],
    "dsp2046-environmentmetrics.json": [NO_MAP],
    "dsp2046-leakdetector.json": ["LeakDetector state is an event"],
    "dsp2046-metricreportdefinition.json": [MRD],
    "dsp2046-outlet.json": [LOAD],
    "dsp2046-powerdistribution.json": ["PowerDistribution describes the PDU"],
    "dsp2046-pump.json": [PUMP],
    "dsp2046-sensor.json": ["unit mismatch: ReadingType Temperature needs ReadingUnits 'Cel' (UCUM), got 'C'"],
    "dsp2046-thermalsubsystem.json": ["ThermalSubsystem holds links only"],
    "lcserver-coolantconnector-cpu1.json": [NO_MAP],
    "lcserver-environmentmetrics.json": [NO_MAP],
    "lcserver-pump-cpu1.json": [PUMP],
    "lcserver-sensors-collection.json": ["SensorCollection " + COLLECTION],
    "lcserver-thermalsubsystem.json": ["ThermalSubsystem holds links only"],
    "pdu-rackpdu1-branch-a.json": [LOAD],
    "pdu-rackpdu1-outlet-a1.json": [LOAD],
    "pdu-rackpdu1-outlet-a5.json": ["Outlet has no power reading (PowerWatts/PolyPhasePowerWatts); unmonitored?"],
    "pdu-rackpdu1-outlets.json": ["OutletCollection " + COLLECTION],
    "pdu-rackpdu1.json": ["PowerDistribution describes the PDU"],
    "pdu-sensor-cabtemp.json": ["unit mismatch: ReadingType Temperature needs ReadingUnits 'Cel' (UCUM), got 'C'"],
    "pdu-sensor-current-a1.json": ["Sensor ReadingType 'Current' has no RackSamples field"],
    "pdu-sensor-energy-a1.json": ["Sensor ReadingType 'EnergykWh' has no RackSamples field"],
    "pdu-sensor-humidity.json": ["Sensor ReadingType 'Humidity' has no RackSamples field"],
    "pdu-sensor-power-a1.json": [LOAD],
    "pdu-sensor-voltage-a1.json": ["Sensor ReadingType 'Voltage' has no RackSamples field"],
    "pdu-sensors-collection.json": ["SensorCollection " + COLLECTION],
    "telemetry-metricdefinition-powerconsumedwatts.json": ["MetricDefinition describes a metric"],
    "telemetry-metricreport-powermetrics.json": ["MinConsumedWatts " + STAT, "MaxConsumedWatts " + STAT] * 2,
    "telemetry-metricreport-powermetricstats.json": (["MaxConsumedWatts " + STAT, "MinConsumedWatts " + STAT] * 2
                                                     + [NO_MAP, "MaxConsumedWatts " + STAT, "MinConsumedWatts " + STAT]),
    "telemetry-mrd-onchange.json": [MRD],
    "telemetry-mrd-platformpowerusage.json": [MRD],
    "telemetry-mrd-powermetrics.json": [MRD],
    "telemetry-service.json": ["TelemetryService root holds links and capabilities, no readings"],
    "telemetry-triggers-platformpowercap.json": ["Triggers holds thresholds, not readings"],
}


def rows(result) -> list[tuple]:
    out = []
    for b in result.batches:
        rs = b.rack
        out.append((b.rack_id, b.sample_time.ToJsonString(), list(rs.pdu_input_power_w), rs.inlet_air_temp_c,
                    rs.outlet_air_temp_c, rs.coolant_supply_temp_c, rs.coolant_return_temp_c, rs.coolant_flow_lpm))
    return out


def assert_rows(got: list[tuple], want: list[tuple]) -> None:
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want, strict=True):
        assert g[:2] == w[:2], (g, w)
        assert g[2] == pytest.approx(w[2], nan_ok=True), (g, w)
        for a, b in zip(g[3:], w[3:], strict=True):
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b), (g, w)


def test_every_real_redfish_file_is_mapped_or_rejected_with_a_reason():
    files = sorted((validation_dir() / "feeds" / "redfish").glob("*.json"))
    names = {f.name for f in files}
    assert names == set(MAPPED) | set(REJECTED), "a feed file without an expectation: add it here"
    for f in files:
        result = parse_redfish_bytes(f.read_bytes(), rack_of_resource=RACKS, received_time=RECEIVED, site_id="s")
        assert_rows(rows(result), MAPPED.get(f.name, []))
        reasons = [r.reason for r in result.rejections]
        want = REJECTED.get(f.name, [])
        assert len(reasons) == len(want), (f.name, reasons)
        for got, expected in zip(reasons, want, strict=True):
            assert expected in got, (f.name, got)
        assert result.batches or result.rejections, f.name  # nothing silently ignored
        for b in result.batches:
            assert b.source == "redfish" and b.site_id == "s"


def test_metric_report_rejections_point_at_the_value():
    doc = json.loads((validation_dir() / "feeds/redfish/telemetry-metricreport-powermetricstats.json").read_text())
    result = parse_redfish(doc, rack_of_resource=RACKS, received_time=RECEIVED)
    unmapped = [r for r in result.rejections if NO_MAP in r.reason]
    assert [r.where for r in unmapped] == [
        "/redfish/v1/TelemetryService/MetricReports/PowerMetricStats#/MetricValues/6 "
        "(/redfish/v1/Chassis/Tray_3/Power#/PowerControl/0/PowerMetrics/AverageConsumedWatts)"
    ]


def test_outlet_mapped_explicitly_is_a_rack_feed():
    doc = json.loads((validation_dir() / "feeds/redfish/pdu-rackpdu1-outlet-a1.json").read_text())
    mapping = dict(RACKS, **{"/redfish/v1/PowerEquipment/RackPDUs/1/Outlets/A1": "r7-0000"})
    result = parse_redfish(doc, rack_of_resource=mapping, received_time=RECEIVED)
    assert_rows(rows(result), [row("r7-0000", R, [197.4])])  # only Line1 current: a single-phase total


def test_branch_circuit_mapped_explicitly_uses_its_poly_phase_power():
    doc = json.loads((validation_dir() / "feeds/redfish/dsp2046-circuit.json").read_text())
    result = parse_redfish(doc, rack_of_resource={"/redfish/v1/PowerEquipment/RackPDUs/1/Branches/A": "r7-0001"},
                           received_time=RECEIVED)
    assert_rows(rows(result), [row("r7-0001", R, [937.4, NAN, NAN])])


# -- synthetic edge cases -----------------------------------------------------------------------------

def report(*values, report_ts=None):
    doc = {"@odata.type": "#MetricReport.v1_5_2.MetricReport", "Id": "X",
           "@odata.id": "/redfish/v1/TelemetryService/MetricReports/X", "MetricValues": list(values)}
    if report_ts:
        doc["Timestamp"] = report_ts
    return doc


def mv(value, prop="/redfish/v1/Chassis/Tray_1/Power#/PowerControl/0/PowerConsumedWatts",
       ts="2024-05-01T00:00:00Z"):
    out = {"MetricValue": value, "MetricProperty": prop}
    if ts is not None:
        out["Timestamp"] = ts
    return out


@pytest.mark.parametrize(
    ("value", "reason"),
    [("abc", "MetricValue 'abc' is not a decimal number"), ("NaN", "MetricValue 'NaN' is not a decimal number"),
     ("1e999", "MetricValue '1e999' is not finite"), (None, "MetricValue is null"),
     (True, "MetricValue is not a number: True"), ("-5", "negative power -5.0 W"), ("", "is not a decimal number")],
)
def test_non_numeric_metric_values_are_rejected(value, reason):
    result = parse_redfish(report(mv(value)), rack_of_resource=RACKS, received_time=RECEIVED)
    assert result.batches == []
    assert len(result.rejections) == 1 and reason in result.rejections[0].reason


def test_metric_report_value_forms_and_timestamps():
    result = parse_redfish(
        report(
            mv("12.5"),
            mv(7, prop="/redfish/v1/ThermalEquipment/CDUs/1/SecondaryCoolantConnectors/1#/FlowLitersPerMinute/Reading"),
            mv("30.5", prop="/redfish/v1/ThermalEquipment/CDUs/1/SecondaryCoolantConnectors/1#/SupplyTemperatureCelsius/Reading",
               ts=None),
            mv("1", ts="2024-05-01T00:00:00.123456789-01:30"),
            mv("2", ts="yesterday"),
            mv("3", prop="/redfish/v1/Chassis/CDU/Sensors/PrimaryFlow#/Reading"),
            mv("4", prop="/redfish/v1/Chassis/Tray_1/Power#/PowerControl/0/PowerCapacityWatts"),
            mv("5", prop="PowerConsumedWatts"),
            mv("12.5"),
            report_ts="2024-05-01T00:00:10+00:00",
        ),
        rack_of_resource=RACKS, received_time=RECEIVED,
    )
    assert_rows(rows(result), [
        row("r1-0000", "2024-05-01T00:00:00Z", flow=7),
        row("r1-0000", "2024-05-01T00:00:10Z", supply=30.5),  # the report's Timestamp when a value has none
        row("r1-0001", "2024-05-01T00:00:00Z", flow=7),
        row("r1-0001", "2024-05-01T00:00:10Z", supply=30.5),
        row("r1-0002", "2024-05-01T00:00:00Z", [12.5]),
        row("r1-0002", "2024-05-01T01:30:00.123456Z", [1]),
    ])
    reasons = [r.reason for r in result.rejections]
    assert reasons[0] == "timestamp 'yesterday' is not ISO 8601 with an offset"
    assert "bare Sensor Reading has no ReadingType/units" in reasons[1]
    assert "has no RackSamples field" in reasons[2]
    assert "is not '<@odata.id>#/<property>'" in reasons[3]
    assert reasons[4] == "duplicate value for this resource, property and timestamp"


def test_parse_timestamp():
    assert parse_timestamp("2016-07-25T11:27:59.795513984+02:00") == datetime(2016, 7, 25, 9, 27, 59, 795513, tzinfo=UTC)
    assert parse_timestamp("2016-11-08T12:25:00-05:00") == datetime(2016, 11, 8, 17, 25, tzinfo=UTC)
    for bad in ("2016-11-08T12:25:00", "2016-13-08T12:25:00Z", 5):
        with pytest.raises(redfish._Bad):
            parse_timestamp(bad)
    assert parse_timestamp("9999-12-31T22:59:59-01:00") == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert parse_timestamp("0001-01-01T01:00:00+01:00") == datetime(1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("text", "reason"), [
    # fuzz find: moved to UTC these pass datetime's range, which raised OverflowError out of the parser
    ("9999-12-31T23:59:59-23:59", "outside the datetime range in UTC"),
    ("0001-01-01T00:00:00+00:01", "outside the datetime range in UTC"),
    ("2016-11-08T12:25:00+24:00", "UTC offset +24:00 out of range"),
    ("2016-11-08T12:25:00-05:60", "UTC offset -05:60 out of range"),
])
def test_a_timestamp_outside_the_utc_range_is_rejected_with_its_reason(text, reason):
    with pytest.raises(redfish._Bad, match=re.escape(reason)):
        parse_timestamp(text)
    report = {"@odata.type": "#MetricReport.v1_5_0.MetricReport", "Id": "r", "@odata.id": "/redfish/v1/r",
              "MetricValues": [{"MetricId": "m", "MetricValue": "1.0", "Timestamp": text,
                                "MetricProperty": "/redfish/v1/Chassis/r1-0000/Sensors/T#/Reading"}]}
    parse_redfish(report, rack_of_resource=RedfishRackMap({}), received_time=datetime(2026, 1, 1, tzinfo=UTC),
                  site_id="s")   # the parser's own contract: rejected values, never an exception


def sensor(**kw):
    doc = {"@odata.type": "#Sensor.v1_12_0.Sensor", "Id": "S", "@odata.id": "/redfish/v1/Chassis/CDU/Sensors/S",
           "ReadingType": "Temperature", "ReadingUnits": "Cel", "Reading": 20.5, "PhysicalContext": "LiquidOutlet"}
    doc.update(kw)
    return doc


@pytest.mark.parametrize(
    ("changes", "reason"),
    [({"ReadingUnits": "[degF]"}, "unit mismatch: ReadingType Temperature needs ReadingUnits 'Cel' (UCUM), got '[degF]'"),
     ({"ReadingType": "LiquidFlowLPM", "ReadingUnits": "L/s"}, "needs ReadingUnits 'L/min' (UCUM), got 'L/s'"),
     ({"ReadingType": "Power", "ReadingUnits": "kW"}, "needs ReadingUnits 'W' (UCUM), got 'kW'"),
     ({"Reading": "20.5"}, "Reading is not a number: '20.5'"),
     ({"Reading": None}, "Sensor without a Reading"),
     ({"PhysicalContext": "Room"}, "Temperature sensor with PhysicalContext 'Room' is not a rack inlet/outlet"),
     ({"ReadingType": "LiquidFlowLPM", "ReadingUnits": "L/min", "Reading": -1}, "negative coolant flow")],
)
def test_sensor_rejections(changes, reason):
    result = parse_redfish(sensor(**changes), rack_of_resource=RACKS, received_time=RECEIVED)
    assert result.batches == [] and len(result.rejections) == 1
    assert reason in result.rejections[0].reason


def test_sensor_mappings():
    result = parse_redfish(sensor(ReadingTime="2024-01-01T00:00:00Z"), rack_of_resource=RACKS, received_time=RECEIVED)
    assert_rows(rows(result), [row("r1-0000", "2024-01-01T00:00:00Z", ret=20.5)])
    result = parse_redfish(sensor(ReadingType="Power", ReadingUnits="W", Reading=900, ElectricalContext="Line2",
                                  PhysicalContext="PowerSupply"), rack_of_resource=RACKS, received_time=RECEIVED)
    assert_rows(rows(result), [row("r1-0000", R, [NAN, 900, NAN])])


def test_total_power_split_by_line_currents():
    doc = {"@odata.type": "#Circuit.v1_9_0.Circuit", "@odata.id": "/redfish/v1/PowerEquipment/RackPDUs/2/Mains/AC1",
           "CircuitType": "Mains", "PowerWatts": {"Reading": 3000},
           "PolyPhaseCurrentAmps": {"Line1": {"Reading": 10}, "Line2": {"Reading": 10}, "Line3": {"Reading": 20}}}
    result = parse_redfish(doc, rack_of_resource={"/redfish/v1/PowerEquipment/RackPDUs/2": "r3-0000"},
                           received_time=RECEIVED)
    assert_rows(rows(result), [row("r3-0000", R, [750, 750, 1500])])


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"{not json", "body is not JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
     (b"\xff\xfe", "body is not UTF-8"),
     (b"[1, 2]", "expected a JSON object, got list"),
     (b'{"Id": "x"}', "missing @odata.type"),
     (b'{"@odata.type": "MetricReport"}', "malformed @odata.type 'MetricReport'"),
     (b'{"@odata.type": "#Chassis.v1_0_0.Processor", "@odata.id": "/redfish/v1/x"}', "unknown @odata.type"),
     (b'{"@odata.type": "#Chassis.v1_25_0.Chassis", "@odata.id": "/redfish/v1/Chassis/1"}',
      "unsupported resource type '#Chassis.v1_25_0.Chassis'"),
     (b'{"@odata.type": "#Outlet.v1_4_4.Outlet", "PowerWatts": {"Reading": 5}}', "Outlet without a valid @odata.id"),
     (b'{"@odata.type": "#MetricReport.v1_5_2.MetricReport", "@odata.id": "/redfish/v1/T/M/1"}',
      "MetricReport without a MetricValues array")],
)
def test_invalid_bodies_are_rejected(body, reason):
    result = parse_redfish_bytes(body, rack_of_resource=RACKS, received_time=RECEIVED)
    assert result.batches == [] and len(result.rejections) == 1
    assert reason in result.rejections[0].reason, result.rejections


def test_rack_map_prefixes_and_callables():
    m = RedfishRackMap({"/redfish/v1/Chassis/Tray_1/": "a", "/redfish/v1/Chassis/Tray_1/Power": ["b", "c"]})
    assert m.resolve("/redfish/v1/Chassis/Tray_1") == (("a",), True)
    assert m.resolve("/redfish/v1/Chassis/Tray_1/Power#/PowerControl/0") == (("b", "c"), True)
    assert m.resolve("/redfish/v1/Chassis/Tray_1/Thermal") == (("a",), False)
    assert m.resolve("/redfish/v1/Chassis/Tray_10") is None  # segment boundary, not a string prefix
    with pytest.raises(ValueError, match="must start with /redfish/"):
        RedfishRackMap({"Chassis/1": "a"})
    with pytest.raises(ValueError, match="non-empty strings"):
        RedfishRackMap({"/redfish/v1/Chassis/1": []})
    doc = json.loads((validation_dir() / "feeds/redfish/pdu-rackpdu1-outlet-a1.json").read_text())
    result = parse_redfish(doc, rack_of_resource=lambda rid: "r5-0000" if rid.endswith("/A1") else None,
                           received_time=RECEIVED)
    assert_rows(rows(result), [row("r5-0000", R, [197.4])])  # a callable answers per id: explicit


def test_circuit_type_that_is_not_a_string_is_rejected():   # fuzz find: a list crashed the parser
    doc = {"@odata.type": "#Circuit.v1_9_0.Circuit", "@odata.id": "/redfish/v1/PowerEquipment/RackPDUs/1",
           "CircuitType": [], "PowerWatts": {"Reading": 3000}}
    result = parse_redfish(doc, rack_of_resource=RACKS, received_time=RECEIVED)
    assert result.rack_batches == []
    assert [r.reason for r in result.rejections] == ["CircuitType must be a string, got list"]


@pytest.mark.parametrize(("prop", "value", "kind"), [
    ("ReadingType", [], "list"), ("ReadingUnits", {"a": 1}, "dict"), ("PhysicalContext", ["Intake"], "list"),
    ("ElectricalContext", [], "list")])
def test_sensor_string_property_of_another_type_is_rejected(prop, value, kind):   # fuzz find: ReadingType [] crashed
    result = parse_redfish(sensor(**{prop: value}), rack_of_resource=RACKS, received_time=RECEIVED)
    assert result.rack_batches == []
    assert [r.reason for r in result.rejections] == [f"Sensor {prop} must be a string, got {kind}"]
