"""The cooling topology of the facility spec, explicit and declarative (issue 10 item 1, DESIGN §3, §8).

    plant (cooling towers, dry coolers, chillers: capacity, approach, fan / compressor power vs load
    and ambient) → facility water loop (supply setpoint, coolant) → CDUs (kW, L/min, pump power
    curve, heat-exchanger approach) in redundancy groups that share one secondary loop → liquid racks
    (secondary supply, flow per rack, liquid capture fraction, cold-plate resistance);
    air side: CRAHs (kW, supply air) in groups → the racks whose heat (or part of it) goes to air.

Coolant properties are data (``COOLANTS``: density and c_p against temperature). Specs that only give
counts (``cdu_kw``, ``racks_per_cdu``, ``crah_kw`` ...) get a generated topology
(``resolved_cooling``); an explicit ``topology`` replaces it. Validation (run when the spec loads)
names the offending path: a dangling reference, a liquid rack with no CDU group, a rack in two
groups, a group that cannot carry its racks at nameplate (with one member failed for N+1), a plant
smaller than the heat at nameplate.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # pragma: no cover
    from twin.core.facility.spec import FacilitySpec

# --- coolant properties (data) -------------------------------------------------------------------
#: Liquid water at 1 atm (IAPWS-95 as tabulated by the NIST Chemistry WebBook, saturated/compressed
#: liquid): temperature °C, density kg/m³, c_p J/(kg·K).
WATER_TABLE = (
    (10.0, 999.70, 4192.0),
    (20.0, 998.21, 4184.0),
    (30.0, 995.65, 4180.0),
    (40.0, 992.22, 4179.0),
    (50.0, 988.03, 4181.0),
    (60.0, 983.20, 4185.0),
)
#: Propylene glycol 25 % (by volume) in water: specific gravity 1.020 at 15.6 °C (Perry's Chemical
#: Engineers' Handbook, Table "Compositions of aqueous antifreeze solutions"); c_p ≈ 3.93 kJ/(kg·K) at
#: 20 °C rising ~1.5 J/(kg·K) per K (ASHRAE Handbook—Fundamentals ch. 31, propylene glycol solutions;
#: rounded, stated as approximate).
PG25_TABLE = (
    (10.0, 1022.0, 3915.0),
    (20.0, 1019.0, 3930.0),
    (30.0, 1015.0, 3945.0),
    (40.0, 1011.0, 3960.0),
    (50.0, 1006.0, 3975.0),
    (60.0, 1001.0, 3990.0),
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Coolant(_Strict):
    """A coolant's properties against temperature (linear between points, held beyond the ends)."""

    name: str
    temps_c: tuple[float, ...] = Field(min_length=1)
    density_kg_m3: tuple[float, ...] = Field(min_length=1)
    cp_j_per_kg_k: tuple[float, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _table(self) -> Coolant:
        n = len(self.temps_c)
        if len(self.density_kg_m3) != n or len(self.cp_j_per_kg_k) != n:
            raise ValueError(
                f"coolant {self.name!r}: temps_c, density_kg_m3 and cp_j_per_kg_k need one length"
            )
        if any(b <= a for a, b in zip(self.temps_c, self.temps_c[1:], strict=False)):
            raise ValueError(f"coolant {self.name!r}: temps_c must rise")
        if any(v <= 0 for v in (*self.density_kg_m3, *self.cp_j_per_kg_k)):
            raise ValueError(f"coolant {self.name!r}: density and c_p must be positive")
        return self

    def _at(self, values: tuple[float, ...], temp_c: float) -> float:
        t = self.temps_c
        if temp_c <= t[0]:
            return values[0]
        if temp_c >= t[-1]:
            return values[-1]
        i = next(k for k in range(1, len(t)) if temp_c <= t[k])
        return values[i - 1] + (values[i] - values[i - 1]) * (temp_c - t[i - 1]) / (t[i] - t[i - 1])

    def density_at(self, temp_c: float) -> float:
        return self._at(self.density_kg_m3, temp_c)

    def cp_at(self, temp_c: float) -> float:
        return self._at(self.cp_j_per_kg_k, temp_c)


def _coolant(name: str, table: tuple[tuple[float, float, float], ...]) -> Coolant:
    return Coolant(
        name=name,
        temps_c=tuple(r[0] for r in table),
        density_kg_m3=tuple(r[1] for r in table),
        cp_j_per_kg_k=tuple(r[2] for r in table),
    )


COOLANTS: dict[str, Coolant] = {"water": _coolant("water", WATER_TABLE), "pg25": _coolant("pg25", PG25_TABLE)}

# --- sourced defaults ----------------------------------------------------------------------------
#: Cooling-tower approach to the wet bulb at design: 3-5 K typical for data-center towers (ASHRAE
#: Handbook—HVAC Systems and Equipment ch. 40 "Cooling towers"; midpoint).
TOWER_APPROACH_K = 4.0
#: Dry-cooler approach to the dry bulb at design: 5-10 K for warm-water DLC (assumption, stated; DESIGN
#: §8 "warm-water DLC runs up to 45 °C supply with dry coolers most of the year").
DRY_COOLER_APPROACH_K = 8.0
#: Chiller condenser approach above its heat sink (wet bulb for a water-cooled chiller via its tower):
#: tower approach + condenser approach ~2 K (assumption, stated).
CHILLER_CONDENSER_APPROACH_K = TOWER_APPROACH_K + 2.0
#: Tower fan power: ASHRAE 90.1-2019 Table 6.8.1-7 requires >= 40.2 gpm/hp for axial-fan open towers at
#: 95/85/75 °F: 40.2 gpm x 500 x 10 °F = 201 kBtu/h = 58.9 kW per 0.746 kW of fan -> 0.0127 kW/kW.
TOWER_FAN_KW_PER_KW = 0.0127
#: Dry-cooler fan power per kW rejected at design (assumption, stated: larger coils and no evaporation
#: need ~2x the tower's airflow per kW).
DRY_COOLER_FAN_KW_PER_KW = 0.025
#: Chiller COP at AHRI 550/590 rating conditions: water-cooled centrifugal >= 600 tons, ASHRAE 90.1-2019
#: Table 6.8.1-3 path A full load 0.560 kW/ton -> COP = 3.517 / 0.560 = 6.28.
CHILLER_COP = 3.517 / 0.560
#: AHRI 550/590 rating: 6.7 °C (44 °F) leaving chilled water, 29.4 °C (85 °F) entering condenser water.
CHILLER_RATING_EVAP_C, CHILLER_RATING_COND_C = 6.7, 29.4
#: Design ambient: ASHRAE Handbook—Fundamentals ch. 14 0.4 % cooling design conditions of a hot US
#: site (e.g. Dallas/Fort Worth: 37.8 °C dry bulb, 23.6 °C mean coincident wet bulb), rounded.
DESIGN_DRY_BULB_C, DESIGN_WET_BULB_C = 38.0, 24.0
#: Fans and pumps follow the affinity laws: power ∝ speed³ ∝ flow³ (ASHRAE Handbook—HVAC Systems and
#: Equipment ch. 21 "Fans", ch. 44 "Centrifugal pumps").
AFFINITY_EXPONENT = 3.0
#: Pumping power = flow x pressure rise / wire-to-water efficiency. Secondary (cold-plate) loop head
#: ~200 kPa (assumption: CDU datasheets list ~1.5-2.5 bar available pressure); facility loop ~300 kPa
#: (assumption); wire-to-water efficiency 0.6 (assumption: small centrifugal pump + motor + VFD).
SECONDARY_HEAD_KPA, FACILITY_HEAD_KPA, PUMP_WIRE_TO_WATER = 200.0, 300.0, 0.6
#: Facility water loop ΔT at design: 10 K (OCP liquid-cooling sizing, DESIGN §8: ~1.5 L/min per kW at
#: ΔT <= 10 °C).
FACILITY_DELTA_T_K = 10.0
#: CDU heat-exchanger approach (secondary supply above facility supply) at rated load: 3-5 °C
#: (DESIGN §8); midpoint.
CDU_APPROACH_K = 4.0
#: CRAH fan power per kW of cooling at full airflow (assumption, stated: EC-fan CRAH datasheets list
#: ~2-4 % of net sensible capacity).
CRAH_FAN_KW_PER_KW = 0.03
#: Air-side limit per rack: air cooling tops out around 20-40 kW, rear-door heat exchangers ~40-60 kW
#: (DESIGN §8); the midpoints. A liquid rack's residual air heat uses the air value.
AIR_LIMIT_KW = {"air": 30.0, "rear_door": 50.0, "liquid": 30.0}
#: GPU junction-to-coolant (liquid) / junction-to-inlet-air (air) thermal resistance at the board:
#: measured ≈ 0.044 K/W on one air-cooled H100 (+580 W -> ~26 °C, DESIGN §8). Cold plates: 0.03 K/W
#: (assumption, stated: keeps a 1,200 W GPU on 36 °C water ~36 K above the coolant, below an 87 °C
#: slowdown, as vendors rate warm-water DLC).
GPU_AIR_K_PER_W, GPU_LIQUID_K_PER_W = 0.044, 0.03
#: GPU thermal dynamics: a fast part under 0.5 s and a slow part τ ≈ 12-15 s (DESIGN §8, one H100);
#: fast τ = 0.25 s (half the bound), slow τ = 13.5 s (midpoint); the resistance split 50/50 between
#: die (fast) and heat sink / cold plate (slow) (assumption; online calibration replaces it).
GPU_FAST_TAU_S, GPU_SLOW_TAU_S, GPU_FAST_SHARE = 0.25, 13.5, 0.5
#: Coolant held in a liquid rack (manifolds, hoses, cold plates): ~1 L per kW of rack liquid heat at
#: nameplate (assumption, stated: an NVL72 rack holds on the order of 100 L).
RACK_COOLANT_L_PER_KW = 1.0
#: Air temperature rise across IT equipment at full load: ~11 K (ASHRAE TC 9.9 thermal guidelines:
#: 120-160 CFM per kW -> 10-14 K; assumption: 11 K).
RACK_AIR_DELTA_T_K = 11.0


class PowerCurve(_Strict):
    """Power of a fan, pump or compressor as a share of its rated power against its load, flow or speed
    share (points, linear between them, held beyond the ends). Absent: the affinity law (fans and
    pumps, speed³) or a constant COP (compressors)."""

    points: tuple[float, ...] = Field(min_length=1, description="load / flow / speed share, rising")
    power_fraction: tuple[float, ...] = Field(min_length=1, description="share of rated power at each point")

    @model_validator(mode="after")
    def _shape(self) -> PowerCurve:
        if len(self.points) != len(self.power_fraction):
            raise ValueError("power curve: points and power_fraction need the same length")
        if any(b <= a for a, b in zip(self.points, self.points[1:], strict=False)) or self.points[0] < 0:
            raise ValueError("power curve: points must be >= 0 and rising")
        if any(f < 0 for f in self.power_fraction):
            raise ValueError("power curve: power_fraction must be >= 0")
        return self


class PlantUnit(_Strict):
    """One heat-rejection unit. Power vs load and ambient: towers and dry coolers by their fans
    (affinity law), chillers by a Carnot-scaled COP (compressor) with a water-side economizer."""

    id: str
    kind: Literal["cooling_tower", "dry_cooler", "chiller"]
    capacity_kw: float = Field(gt=0, description="heat rejected at design ambient")
    approach_k: float = Field(
        ge=0, description="leaving water above the heat sink (wet bulb, dry bulb) at design"
    )
    fan_kw: float = Field(0.0, ge=0, description="fan power at full speed")
    cop: float | None = Field(None, gt=0, description="chiller: COP at AHRI 550/590 rating conditions")
    economizer: bool = Field(True, description="chiller: free cooling when the ambient allows the setpoint")
    fan_curve: PowerCurve | None = Field(None, description="fan power vs speed share (None: speed³)")
    compressor_part_load: PowerCurve | None = Field(
        None, description="chiller: compressor power / (Q/COP) vs load share (None: constant COP)"
    )

    @model_validator(mode="after")
    def _chiller_cop(self) -> PlantUnit:
        if self.kind == "chiller" and self.cop is None:
            raise ValueError(f"plant unit {self.id!r}: a chiller needs cop")
        return self


class Cdu(_Strict):
    id: str
    capacity_kw: float = Field(gt=0)
    flow_lpm: float = Field(gt=0, description="secondary flow at full pump speed")
    pump_kw: float = Field(ge=0, description="pump power at full flow")
    pump_curve: PowerCurve | None = Field(None, description="pump power vs flow share (None: flow³)")
    approach_k: float = Field(
        CDU_APPROACH_K, ge=0, description="secondary supply above facility supply at rated load"
    )


class Crah(_Strict):
    id: str
    capacity_kw: float = Field(gt=0)
    supply_air_temp_c: float = Field(ge=10, le=35)
    fan_kw: float = Field(ge=0, description="fan power at full airflow")
    fan_curve: PowerCurve | None = Field(None, description="fan power vs load share (None: speed³)")


class CoolingGroup(_Strict):
    """CDUs sharing one secondary loop (or CRAHs sharing one air space) and the racks they serve.
    N: no spare; N+1: carries its racks at nameplate with its largest member failed."""

    id: str
    redundancy: Literal["N", "N+1"]
    members: list[str] = Field(min_length=1)
    racks: list[str] = Field(min_length=1, description="rack ids, or 'row:<row id>' / 'hall:<hall id>'")
    supply_temp_c: float | None = Field(
        None,
        ge=2,
        le=60,
        description="CDU loops: secondary supply setpoint "
        "(None: facility supply + approach); held while the approach allows",
    )


class RackCooling(_Strict):
    """Cooling facts of a rack type (per rack; GPU values per GPU)."""

    flow_lpm: float = Field(0.0, ge=0, description="secondary coolant flow per rack at design (0: air)")
    coolant_volume_l: float = Field(
        0.0, ge=0, description="coolant held in the rack (heats up when flow stops)"
    )
    air_limit_kw: float = Field(gt=0, description="heat the air side can take from this rack")
    gpu_k_per_w: float = Field(gt=0, description="GPU junction to coolant / inlet air, steady state")
    gpu_fast_share: float = Field(
        GPU_FAST_SHARE, gt=0, lt=1, description="share of gpu_k_per_w in the fast (die) part"
    )
    gpu_fast_tau_s: float = Field(GPU_FAST_TAU_S, gt=0)
    gpu_slow_tau_s: float = Field(GPU_SLOW_TAU_S, gt=0)


class CoolingTopology(_Strict):
    facility_coolant: str = "water"
    secondary_coolant: str = "water"
    facility_pump_kw: float = Field(0.0, ge=0, description="facility water pumps at full flow")
    plant: list[PlantUnit] = Field(min_length=1)
    cdus: list[Cdu] = []
    cdu_groups: list[CoolingGroup] = []
    crahs: list[Crah] = []
    crah_groups: list[CoolingGroup] = []
    rack_cooling: dict[str, RackCooling] = Field({}, description="by rack type")


class CoolingPlant(_Strict):
    """The ``cooling`` block: counts (read by the simulator and ingest) and an optional topology."""

    heat_rejection: Literal["cooling_tower", "dry_cooler", "chiller"]
    plant_capacity_mw: float = Field(gt=0)
    facility_supply_temp_c: float = Field(ge=2, le=45, description="ASHRAE W-class limit")
    racks_per_cdu: int = Field(1, ge=1)
    cdu_kw: float = Field(gt=0)
    cdu_flow_lpm: float = Field(gt=0)
    crah_kw: float = Field(gt=0)
    air_supply_temp_c: float = Field(22.0, ge=10, le=35)
    # generation knobs (all optional)
    plant_units: int = Field(4, ge=1, description="generated plant: identical units sharing the capacity")
    cdu_redundancy: Literal["N", "N+1"] = "N+1"
    crah_redundancy: Literal["N", "N+1"] = "N+1"
    coolant: str = Field("water", description="facility and secondary coolant of generated loops")
    design_dry_bulb_c: float = DESIGN_DRY_BULB_C
    design_wet_bulb_c: float = DESIGN_WET_BULB_C
    topology: CoolingTopology | None = None

    @model_validator(mode="after")
    def _coolant_known(self) -> CoolingPlant:
        names = [self.coolant]
        if self.topology is not None:
            names += [self.topology.facility_coolant, self.topology.secondary_coolant]
        for n in names:
            if n not in COOLANTS:
                raise ValueError(f"cooling: unknown coolant {n!r} (known: {', '.join(COOLANTS)})")
        if self.design_wet_bulb_c > self.design_dry_bulb_c:
            raise ValueError("cooling: design_wet_bulb_c cannot exceed design_dry_bulb_c")
        return self


# --- generation from counts ----------------------------------------------------------------------
def pump_kw_for(flow_lpm: float, head_kpa: float) -> float:
    """Electrical pump power: flow × head / wire-to-water efficiency."""
    return flow_lpm / 60_000.0 * head_kpa * 1000.0 / PUMP_WIRE_TO_WATER / 1000.0


def default_plant_unit(uid: str, kind: str, capacity_kw: float) -> PlantUnit:
    if kind == "cooling_tower":
        return PlantUnit(
            id=uid,
            kind=kind,
            capacity_kw=capacity_kw,
            approach_k=TOWER_APPROACH_K,
            fan_kw=TOWER_FAN_KW_PER_KW * capacity_kw,
        )
    if kind == "dry_cooler":
        return PlantUnit(
            id=uid,
            kind=kind,
            capacity_kw=capacity_kw,
            approach_k=DRY_COOLER_APPROACH_K,
            fan_kw=DRY_COOLER_FAN_KW_PER_KW * capacity_kw,
        )
    # a water-cooled chiller and its tower: tower fans on top of the compressor
    return PlantUnit(
        id=uid,
        kind="chiller",
        capacity_kw=capacity_kw,
        approach_k=CHILLER_CONDENSER_APPROACH_K,
        fan_kw=TOWER_FAN_KW_PER_KW * capacity_kw,
        cop=CHILLER_COP,
    )


def default_rack_cooling(spec: FacilitySpec, rack_type: str) -> RackCooling:
    from twin.core.facility.power import rack_nameplate_w

    rt = spec.rack_types[rack_type]
    c = spec.cooling
    liquid = rt.liquid_fraction > 0
    liquid_kw = rt.liquid_fraction * rack_nameplate_w(spec, rack_type) / 1000.0
    return RackCooling(
        flow_lpm=c.cdu_flow_lpm / c.racks_per_cdu if liquid else 0.0,
        coolant_volume_l=RACK_COOLANT_L_PER_KW * liquid_kw if liquid else 0.0,
        air_limit_kw=AIR_LIMIT_KW[rt.cooling],
        gpu_k_per_w=GPU_LIQUID_K_PER_W if liquid else GPU_AIR_K_PER_W,
    )


def resolved_rack_cooling(spec: FacilitySpec) -> dict[str, RackCooling]:
    given = spec.cooling.topology.rack_cooling if spec.cooling.topology is not None else {}
    return {name: given.get(name) or default_rack_cooling(spec, name) for name in spec.rack_types}


def generated_cooling(spec: FacilitySpec) -> CoolingTopology:
    """The topology implied by a count-only spec. Plant: ``plant_units`` identical units of the
    declared kind sharing ``plant_capacity_mw``. CDUs: per row of liquid racks, ceil(racks /
    racks_per_cdu) CDUs (+1 for N+1) on one secondary loop serving the row. CRAHs: per hall, enough
    CRAHs for the hall's air heat at nameplate (+1 for N+1) in one air space."""
    from twin.core.facility.power import rack_nameplate_w

    c = spec.cooling
    unit_kw = c.plant_capacity_mw * 1000.0 / c.plant_units
    plant = [default_plant_unit(f"plant-{i + 1}", c.heat_rejection, unit_kw) for i in range(c.plant_units)]
    cdus: list[Cdu] = []
    cdu_groups: list[CoolingGroup] = []
    crahs: list[Crah] = []
    crah_groups: list[CoolingGroup] = []
    spare = {"N": 0, "N+1": 1}
    for hall in spec.halls:
        air_kw = 0.0
        for row in hall.rows:
            rt = spec.rack_types[row.rack_type]
            nameplate_kw = rack_nameplate_w(spec, row.rack_type) / 1000.0
            air_kw += (1.0 - rt.liquid_fraction) * nameplate_kw * row.count
            if rt.liquid_fraction <= 0:
                continue
            n = math.ceil(row.count / c.racks_per_cdu) + spare[c.cdu_redundancy]
            ids = [f"cdu-{row.id}-{k + 1}" for k in range(n)]
            cdus += [
                Cdu(
                    id=i,
                    capacity_kw=c.cdu_kw,
                    flow_lpm=c.cdu_flow_lpm,
                    pump_kw=pump_kw_for(c.cdu_flow_lpm, SECONDARY_HEAD_KPA),
                )
                for i in ids
            ]
            cdu_groups.append(
                CoolingGroup(
                    id=f"loop-{row.id}", redundancy=c.cdu_redundancy, members=ids, racks=[f"row:{row.id}"]
                )
            )
        if air_kw <= 0:
            continue
        n = math.ceil(air_kw / c.crah_kw - 1e-9) + spare[c.crah_redundancy]
        ids = [f"crah-{hall.id}-{k + 1}" for k in range(n)]
        crahs += [
            Crah(
                id=i,
                capacity_kw=c.crah_kw,
                supply_air_temp_c=c.air_supply_temp_c,
                fan_kw=CRAH_FAN_KW_PER_KW * c.crah_kw,
            )
            for i in ids
        ]
        crah_groups.append(
            CoolingGroup(
                id=f"air-{hall.id}", redundancy=c.crah_redundancy, members=ids, racks=[f"hall:{hall.id}"]
            )
        )
    total_kw = sum(u.capacity_kw for u in plant)
    facility_flow_lpm = (
        total_kw / (FACILITY_DELTA_T_K * 4.18) * 60.0
    )  # kg/s ≈ L/s of water, c_p 4.18 kJ/(kg·K)
    return CoolingTopology(
        facility_coolant=c.coolant,
        secondary_coolant=c.coolant,
        facility_pump_kw=pump_kw_for(facility_flow_lpm, FACILITY_HEAD_KPA),
        plant=plant,
        cdus=cdus,
        cdu_groups=cdu_groups,
        crahs=crahs,
        crah_groups=crah_groups,
        rack_cooling=resolved_rack_cooling(spec),
    )


def resolved_cooling(spec: FacilitySpec) -> CoolingTopology:
    """The explicit topology, or the generated one; rack cooling always complete (defaults filled)."""
    if spec.cooling.topology is None:
        return generated_cooling(spec)
    return spec.cooling.topology.model_copy(update={"rack_cooling": resolved_rack_cooling(spec)})


# --- checks --------------------------------------------------------------------------------------
def expand_cooling_racks(selectors: list[str], spec: FacilitySpec, where: str) -> list[str]:
    from twin.core.facility.power import rack_ids_by_row

    by_row = rack_ids_by_row(spec)
    halls = {h.id: [r for row in h.rows for r in by_row[row.id]] for h in spec.halls}
    known = {r for rs in by_row.values() for r in rs}
    out: list[str] = []
    for s in selectors:
        if s.startswith("row:"):
            if s[4:] not in by_row:
                raise ValueError(f"{where}: unknown row {s[4:]!r}")
            out += by_row[s[4:]]
        elif s.startswith("hall:"):
            if s[5:] not in halls:
                raise ValueError(f"{where}: unknown hall {s[5:]!r}")
            out += halls[s[5:]]
        elif s in known:
            out.append(s)
        else:
            raise ValueError(f"{where}: unknown rack {s!r}")
    return out


def group_racks(spec: FacilitySpec, groups: list[CoolingGroup], where: str) -> dict[str, str]:
    """rack id -> the group serving it; a rack in two groups is an error naming both."""
    out: dict[str, str] = {}
    for g in groups:
        for r in expand_cooling_racks(g.racks, spec, f"{where}.{g.id}.racks"):
            if r in out and out[r] != g.id:
                raise ValueError(f"{where}: rack {r} is in {out[r]} and {g.id}; a rack takes one group")
            out[r] = g.id
    return out


def check_cooling(spec: FacilitySpec) -> None:
    """Raise ValueError naming the offending path: dangling references, a liquid rack without a CDU
    loop, a rack without an air path, a group above its capacity or flow at nameplate (with its largest
    member failed for N+1), a plant below the heat at nameplate."""
    from twin.core.facility.power import rack_ids_by_row, rack_nameplate_w

    topo = resolved_cooling(spec)
    where = "cooling.topology" if spec.cooling.topology is not None else "cooling (generated topology)"
    cdus = {c.id: c for c in topo.cdus}
    crahs = {c.id: c for c in topo.crahs}
    ids = [
        *(u.id for u in topo.plant),
        *cdus,
        *crahs,
        *(g.id for g in topo.cdu_groups),
        *(g.id for g in topo.crah_groups),
    ]
    dup = sorted(i for i, n in Counter(ids).items() if n > 1)   # list.count per id: quadratic (site-100k: ~0.2 s)
    if dup:
        raise ValueError(f"{where}: component ids must be unique, repeated: {', '.join(dup)}")
    for name in spec.cooling.topology.rack_cooling if spec.cooling.topology is not None else {}:
        if name not in spec.rack_types:
            raise ValueError(f"{where}.rack_cooling.{name}: unknown rack type {name!r}")
    for kind, groups, members, what in (
        ("cdu_groups", topo.cdu_groups, cdus, "CDU"),
        ("crah_groups", topo.crah_groups, crahs, "CRAH"),
    ):
        used: dict[str, str] = {}
        for g in groups:
            for m in g.members:
                if m not in members:
                    raise ValueError(f"{where}.{kind}.{g.id}: dangling reference {m!r} (not a {what})")
                if m in used:
                    raise ValueError(f"{where}.{kind}: {what} {m} is in {used[m]} and {g.id}")
                used[m] = g.id
            if g.redundancy == "N+1" and len(g.members) < 2:
                raise ValueError(f"{where}.{kind}.{g.id}: N+1 needs at least 2 members")
    rack_cdu = group_racks(spec, topo.cdu_groups, f"{where}.cdu_groups")
    rack_crah = group_racks(spec, topo.crah_groups, f"{where}.crah_groups")
    by_row = rack_ids_by_row(spec)
    row_type = {row.id: row.rack_type for hall in spec.halls for row in hall.rows}
    nameplate = {name: rack_nameplate_w(spec, name) / 1000.0 for name in spec.rack_types}
    liquid_kw: dict[str, float] = {}
    air_kw: dict[str, float] = {}
    flow: dict[str, float] = {}
    for row, racks in by_row.items():
        rt_name = row_type[row]
        rt, rc = spec.rack_types[rt_name], topo.rack_cooling[rt_name]
        q_liq = rt.liquid_fraction * nameplate[rt_name]
        q_air = nameplate[rt_name] - q_liq
        if q_air > rc.air_limit_kw * (1 + 1e-9):
            raise ValueError(
                f"{where}.rack_cooling.{rt_name}: {q_air:.1f} kW to air at nameplate, above the "
                f"air limit {rc.air_limit_kw:.1f} kW (rack {racks[0]})"
            )
        for r in racks:
            if rt.liquid_fraction > 0:
                if r not in rack_cdu:
                    raise ValueError(
                        f"{where}: liquid rack {r} (row {row}) has no CDU loop: no cdu_groups lists it"
                    )
                if rc.flow_lpm <= 0:
                    raise ValueError(f"{where}.rack_cooling.{rt_name}: liquid racks need flow_lpm > 0")
                g = rack_cdu[r]
                liquid_kw[g] = liquid_kw.get(g, 0.0) + q_liq
                flow[g] = flow.get(g, 0.0) + rc.flow_lpm
            if q_air > 0:
                if r not in rack_crah:
                    raise ValueError(
                        f"{where}: rack {r} (row {row}) sends {q_air:.1f} kW to air but no "
                        f"crah_groups lists it"
                    )
                g = rack_crah[r]
                air_kw[g] = air_kw.get(g, 0.0) + q_air

    def carry(kind: str, g: CoolingGroup, caps: list[float], load: float, unit: str, what: str) -> None:
        total = sum(caps) - (max(caps) if g.redundancy == "N+1" else 0.0)
        if load > total * (1 + 1e-9):
            extra = " with its largest member failed (N+1)" if g.redundancy == "N+1" else ""
            raise ValueError(
                f"{where}.{kind}.{g.id}: needs {load:.1f} {unit} {what} at nameplate, above the "
                f"{total:.1f} {unit} its members give{extra}"
            )

    for g in topo.cdu_groups:
        carry(
            "cdu_groups",
            g,
            [cdus[m].capacity_kw for m in g.members],
            liquid_kw.get(g.id, 0.0),
            "kW",
            "of heat",
        )
        carry("cdu_groups", g, [cdus[m].flow_lpm for m in g.members], flow.get(g.id, 0.0), "L/min", "of flow")
    for g in topo.crah_groups:
        carry(
            "crah_groups",
            g,
            [crahs[m].capacity_kw for m in g.members],
            air_kw.get(g.id, 0.0),
            "kW",
            "of heat",
        )
    it_kw = sum(nameplate[row_type[row]] * len(racks) for row, racks in by_row.items())
    aux_kw = sum(c.pump_kw for c in topo.cdus) + sum(c.fan_kw for c in topo.crahs)
    plant_kw = sum(u.capacity_kw for u in topo.plant)
    if it_kw + aux_kw > plant_kw * (1 + 1e-9):
        raise ValueError(
            f"{where}.plant: rejects {plant_kw:.0f} kW, below the {it_kw + aux_kw:.0f} kW of heat at "
            f"nameplate (IT {it_kw:.0f} kW + pumps and fans {aux_kw:.0f} kW)"
        )
