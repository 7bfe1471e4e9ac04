"""Cooling equipment samples (CDUs, CRAHs, the plant): ids and physical ranges checked against the
facility's cooling topology, and the rows they become (pure; the codec builds ``EquipmentBatch``).

Rules (inclusive ranges; NaN = not measured, stored as NULL; ±inf rejected):
  ids      site_id = the facility's; every cdu_id / crah_id one of the topology's, once per batch;
           a batch carries at least one sample and no rack data (rack_id, nodes, rack, links empty)
  ranges   coolant temperatures [-10, 100] °C; air temperatures [-10, 80] °C; outdoor dry / wet bulb
           [-60, 60] °C with wet bulb <= dry bulb; flows [0, 1.5 × the CDU's rated L/min];
           differential pressure [0, 1000] kPa; pump / fan speed [0, 100] %;
           heat removed [0, 1.5 × the CDU's capacity] W; tower / chiller power [0, 1.5 × plant capacity] W
  time     as rack batches (validation.MAX_FUTURE ahead, validation.MAX_AGE behind the clock)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from twin.ingest.domain.validation import MAX_AGE, MAX_FUTURE

COOLANT_RANGE = (-10.0, 100.0)
AIR_RANGE = (-10.0, 80.0)
OUTDOOR_RANGE = (-60.0, 60.0)
DP_RANGE_KPA = (0.0, 1000.0)
PCT_RANGE = (0.0, 100.0)
FACTOR = 1.5

CDU_FIELDS = ("primary_supply_temp_c", "primary_return_temp_c", "primary_flow_lpm", "secondary_supply_temp_c",
              "secondary_return_temp_c", "secondary_flow_lpm", "differential_pressure_kpa", "pump_speed_pct",
              "heat_removed_w")
CRAH_FIELDS = ("supply_air_temp_c", "return_air_temp_c", "fan_speed_pct")
PLANT_FIELDS = ("outdoor_temp_c", "wet_bulb_temp_c", "tower_power_w", "chiller_power_w")


@dataclass(frozen=True)
class EquipmentSample:
    kind: str                     # "cdu" | "crah" | "plant"
    equipment_id: str             # CDU / CRAH id; the site id for the plant
    values: dict[str, float]      # field name -> value (NaN: not measured)


@dataclass(frozen=True)
class EquipmentBatch:
    site_id: str
    sample_time: datetime | None
    sequence: int
    source: str
    samples: list[EquipmentSample]
    rack_data: bool = False       # the record also carries rack fields (not allowed)


@dataclass(frozen=True)
class EquipmentLimits:
    site_id: str
    cdu_flow_lpm: dict[str, float]
    cdu_capacity_w: dict[str, float]
    crah_ids: frozenset[str]
    plant_capacity_w: float
    max_future: object = MAX_FUTURE
    max_age: object = MAX_AGE


def limits_from_spec(spec) -> EquipmentLimits:
    """From a twin.core.facility FacilitySpec (its resolved cooling topology)."""
    from twin.core.facility.cooling import resolved_cooling

    topo = resolved_cooling(spec)
    return EquipmentLimits(
        site_id=spec.site_id,
        cdu_flow_lpm={c.id: float(c.flow_lpm) for c in topo.cdus},
        cdu_capacity_w={c.id: float(c.capacity_kw) * 1e3 for c in topo.cdus},
        crah_ids=frozenset(c.id for c in topo.crahs),
        plant_capacity_w=float(sum(u.capacity_kw for u in topo.plant)) * 1e3,
    )


@dataclass
class _Found:
    reasons: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        if len(self.reasons) < 20:
            self.reasons.append(text)


def _range(found: _Found, where: str, name: str, v: float, lo: float, hi: float, unit: str) -> None:
    if math.isnan(v):
        return
    if not math.isfinite(v) or not lo <= v <= hi:
        found.add(f"{where}.{name}: {v} outside [{lo:g}, {hi:g}] {unit}")


def _ranges(limits: EquipmentLimits, s: EquipmentSample) -> dict[str, tuple[float, float, str]]:
    if s.kind == "cdu":
        flow = FACTOR * limits.cdu_flow_lpm.get(s.equipment_id, 0.0)
        heat = FACTOR * limits.cdu_capacity_w.get(s.equipment_id, 0.0)
        return {"primary_supply_temp_c": (*COOLANT_RANGE, "°C"), "primary_return_temp_c": (*COOLANT_RANGE, "°C"),
                "secondary_supply_temp_c": (*COOLANT_RANGE, "°C"), "secondary_return_temp_c": (*COOLANT_RANGE, "°C"),
                "primary_flow_lpm": (0.0, flow, "l/min"), "secondary_flow_lpm": (0.0, flow, "l/min"),
                "differential_pressure_kpa": (*DP_RANGE_KPA, "kPa"), "pump_speed_pct": (*PCT_RANGE, "%"),
                "heat_removed_w": (0.0, heat, "W")}
    if s.kind == "crah":
        return {"supply_air_temp_c": (*AIR_RANGE, "°C"), "return_air_temp_c": (*AIR_RANGE, "°C"),
                "fan_speed_pct": (*PCT_RANGE, "%")}
    cap = FACTOR * limits.plant_capacity_w
    return {"outdoor_temp_c": (*OUTDOOR_RANGE, "°C"), "wet_bulb_temp_c": (*OUTDOOR_RANGE, "°C"),
            "tower_power_w": (0.0, cap, "W"), "chiller_power_w": (0.0, cap, "W")}


def validate_equipment(batch: EquipmentBatch, limits: EquipmentLimits, now: datetime) -> list[str]:
    """Every reason the batch cannot be stored (empty: valid)."""
    found = _Found()
    if batch.site_id != limits.site_id:
        found.add(f"site_id: {batch.site_id!r} is not this facility's {limits.site_id!r}")
    if batch.rack_data:
        found.add("equipment: an equipment batch carries no rack data (rack_id, nodes, rack, links)")
    if batch.sample_time is None:
        found.add("sample_time: missing")
    elif batch.sample_time > now + limits.max_future:
        found.add(f"sample_time: {batch.sample_time.isoformat()} is more than {limits.max_future} ahead of the clock")
    elif batch.sample_time < now - limits.max_age:
        found.add(f"sample_time: {batch.sample_time.isoformat()} is more than {limits.max_age} old")
    if not batch.samples:
        found.add("equipment: no CDU, CRAH or plant sample")
    seen: set[tuple[str, str]] = set()
    for i, s in enumerate(batch.samples):
        where = {"cdu": f"equipment.cdus[{i}]", "crah": f"equipment.crahs[{i}]", "plant": "equipment.plant"}[s.kind]
        if s.kind == "cdu" and s.equipment_id not in limits.cdu_flow_lpm:
            found.add(f"{where}.cdu_id: unknown CDU {s.equipment_id!r}")
            continue
        if s.kind == "crah" and s.equipment_id not in limits.crah_ids:
            found.add(f"{where}.crah_id: unknown CRAH {s.equipment_id!r}")
            continue
        if (s.kind, s.equipment_id) in seen:
            found.add(f"{where}: {s.equipment_id!r} twice in one batch")
        seen.add((s.kind, s.equipment_id))
        for name, (lo, hi, unit) in _ranges(limits, s).items():
            _range(found, where, name, s.values.get(name, math.nan), lo, hi, unit)
        if s.kind == "plant":
            db, wb = s.values.get("outdoor_temp_c", math.nan), s.values.get("wet_bulb_temp_c", math.nan)
            if math.isfinite(db) and math.isfinite(wb) and wb > db:
                found.add(f"{where}.wet_bulb_temp_c: {wb} above the dry bulb {db}")
    return found.reasons


#: telemetry_equipment columns (see migrations/005_telemetry_equipment.sql) per sample field
COLUMN_OF = {
    "primary_supply_temp_c": "primary_supply_temp_c", "primary_return_temp_c": "primary_return_temp_c",
    "primary_flow_lpm": "primary_flow_lpm", "secondary_supply_temp_c": "supply_temp_c",
    "secondary_return_temp_c": "return_temp_c", "secondary_flow_lpm": "flow_lpm",
    "differential_pressure_kpa": "differential_pressure_kpa", "pump_speed_pct": "speed_pct",
    "heat_removed_w": "heat_removed_w", "supply_air_temp_c": "supply_temp_c", "return_air_temp_c": "return_temp_c",
    "fan_speed_pct": "speed_pct", "outdoor_temp_c": "outdoor_temp_c", "wet_bulb_temp_c": "wet_bulb_temp_c",
    "tower_power_w": "tower_power_w", "chiller_power_w": "chiller_power_w",
}
COLUMNS = ("supply_temp_c", "return_temp_c", "flow_lpm", "primary_supply_temp_c", "primary_return_temp_c",
           "primary_flow_lpm", "differential_pressure_kpa", "speed_pct", "heat_removed_w", "outdoor_temp_c",
           "wet_bulb_temp_c", "tower_power_w", "chiller_power_w")


def rows(batch: EquipmentBatch) -> list[tuple]:
    """(time, site_id, equipment_id, kind, source, *COLUMNS) per sample; NULL for NaN."""
    out = []
    for s in batch.samples:
        cols = dict.fromkeys(COLUMNS)
        for name, v in s.values.items():
            if not math.isnan(v):
                cols[COLUMN_OF[name]] = float(v)
        out.append((batch.sample_time, batch.site_id, s.equipment_id, s.kind, batch.source, *cols.values()))
    return out
