"""Ingest's equipment path without Kafka: ids and ranges checked against the cooling topology, NaN = not
measured (a NULL column), the protobuf round trip, and a Redfish CoolingUnit with expanded connectors and
pumps -> one CDU sample (without readings it stays links and status only, rejected as before)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from twin.core.facility import load_facility_spec
from twin.ingest.adapters import codec
from twin.ingest.adapters.redfish import parse_redfish
from twin.ingest.domain import equipment as eq

SPEC = load_facility_spec("gb200-nvl72-hall")
LIMITS = eq.limits_from_spec(SPEC)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
NAN = math.nan


def cdu(cdu_id: str, **values) -> eq.EquipmentSample:
    return eq.EquipmentSample("cdu", cdu_id, {f: values.get(f, NAN) for f in eq.CDU_FIELDS})


def batch(*samples, **kw) -> eq.EquipmentBatch:
    return eq.EquipmentBatch(site_id=kw.get("site_id", SPEC.site_id), sample_time=kw.get("time", NOW), sequence=1,
                             source="test", samples=list(samples), rack_data=kw.get("rack_data", False))


def test_valid_batch_round_trips_and_nan_is_null():
    b = batch(cdu("cdu-a-1", heat_removed_w=400e3, secondary_flow_lpm=1800.0),
              eq.EquipmentSample("plant", SPEC.site_id, {"outdoor_temp_c": 30.0, "wet_bulb_temp_c": 20.0,
                                                          "tower_power_w": 40e3, "chiller_power_w": NAN}))
    assert eq.validate_equipment(b, LIMITS, NOW) == []
    back = codec.decode_equipment(codec.encode_equipment(b))
    assert back.samples[0].values["heat_removed_w"] == 400e3 and math.isnan(back.samples[0].values["pump_speed_pct"])
    assert back.samples[1].kind == "plant" and back.samples[1].equipment_id == SPEC.site_id
    rows = eq.rows(back)
    cols = dict(zip(("time", "site", "id", "kind", "source", *eq.COLUMNS), rows[0], strict=True))
    assert cols["heat_removed_w"] == 400e3 and cols["flow_lpm"] == 1800.0 and cols["speed_pct"] is None


def test_bad_batches_name_every_problem():
    b = batch(cdu("cdu-z-9"), cdu("cdu-a-1", secondary_flow_lpm=9999.0, pump_speed_pct=120.0),
              cdu("cdu-a-1", heat_removed_w=math.inf),
              eq.EquipmentSample("plant", SPEC.site_id, {"outdoor_temp_c": 20.0, "wet_bulb_temp_c": 25.0}),
              site_id="elsewhere", time=NOW + timedelta(hours=1), rack_data=True)
    reasons = "; ".join(eq.validate_equipment(b, LIMITS, NOW))
    for part in ("site_id: 'elsewhere'", "carries no rack data", "ahead of the clock",
                 "equipment.cdus[0].cdu_id: unknown CDU 'cdu-z-9'", "equipment.cdus[1].secondary_flow_lpm: 9999.0",
                 "equipment.cdus[1].pump_speed_pct: 120.0", "equipment.cdus[2]: 'cdu-a-1' twice",
                 "equipment.cdus[2].heat_removed_w: inf", "equipment.plant.wet_bulb_temp_c: 25.0 above the dry bulb"):
        assert part in reasons, (part, reasons)
    assert eq.validate_equipment(batch(), LIMITS, NOW) == ["equipment: no CDU, CRAH or plant sample"]


def test_redfish_cooling_unit_with_expanded_readings_is_one_cdu_sample():
    doc = {"@odata.type": "#CoolingUnit.v1_5_0.CoolingUnit", "@odata.id": "/redfish/v1/ThermalEquipment/CDUs/cdu-a-2",
           "Id": "cdu-a-2",
           "PrimaryCoolantConnectors": {"Members": [{"FlowLitersPerMinute": {"Reading": 42},
                                                     "SupplyTemperatureCelsius": {"Reading": 30},
                                                     "ReturnTemperatureCelsius": {"Reading": 40},
                                                     "DeltaPressurekPa": {"Reading": 138},
                                                     "HeatRemovedkW": {"Reading": 25.48}}]},
           "SecondaryCoolantConnectors": {"Members": [{"FlowLitersPerMinute": {"Reading": 50},
                                                       "SupplyTemperatureCelsius": {"Reading": 34},
                                                       "ReturnTemperatureCelsius": {"Reading": 44}}]},
           "Pumps": {"Members": [{"PumpSpeedPercent": {"Reading": 50}}, {"PumpSpeedPercent": {"Reading": 70}}]}}
    res = parse_redfish(doc, rack_of_resource={}, received_time=NOW, site_id=SPEC.site_id)
    assert not res.rejections and not res.rack_batches
    [b] = res.equipment_batches
    v = b.samples[0].values
    assert b.samples[0].equipment_id == "cdu-a-2" and b.sample_time == NOW and b.source == "redfish"
    assert (v["primary_flow_lpm"], v["secondary_supply_temp_c"], v["pump_speed_pct"]) == (42, 34, 60)
    assert v["differential_pressure_kpa"] == 138 and v["heat_removed_w"] == 25480.0   # from the primary side
    assert eq.validate_equipment(b, LIMITS, NOW) == []
    links_only = {k: doc[k] for k in ("@odata.type", "@odata.id", "Id")}
    res = parse_redfish(links_only, rack_of_resource={}, received_time=NOW, site_id=SPEC.site_id)
    assert not res.equipment_batches and "CoolingUnit holds links and status only" in res.reason
