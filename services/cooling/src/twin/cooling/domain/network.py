"""Heat from racks to the plant as index arrays: racks -> CDU loops / CRAH groups -> plant.

Per rack, IT power is heat; ``liquid_fraction`` of it goes into the secondary loop of the rack's CDU
group, the rest to the air of its CRAH group (liquid + air = IT exactly). Per CDU group (one
secondary loop), the healthy CDUs share the heat by capacity and pump the flow; racks get their
design flow while the group's pumps can give it, proportionally less when they cannot. Per loop
``Q = ṁ·c_p·ΔT`` gives the rack return temperatures. A CDU's heat exchanger keeps the secondary
supply ``approach_k × load fraction`` above the facility supply (constant UA at fixed flows: the
approach grows with the heat; a CDU beyond its rating keeps warming its loop). CRAHs share their
group's air heat by capacity; fans follow the affinity law. The plant rejects all of it (IT heat +
pump and fan work) at a power that depends on load and ambient: fan power ∝ speed³ for towers and
dry coolers, where the speed needed grows as the ambient eats the approach; chillers at a COP scaled
by the Carnot ratio to their rating, with free cooling when the ambient allows. A plant that cannot
hold the setpoint lets the facility supply rise.

Measured beats assumed: where ``Conditions`` carries a measured loop supply or flow (from its CDUs'
telemetry) or the plant's measured fan / compressor power, that value replaces the model's (the rest of
the chain follows from it: rack flows, returns, GPU coolant, cooling power). Measured ambient arrives as
the conditions' dry and wet bulb.

Everything is a ``np.bincount`` or an index over these arrays, so a tick is a few vector operations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .coolant import Coolant, delta_t_k

TOWER, DRY_COOLER, CHILLER = range(3)
PLANT_KINDS = ("cooling_tower", "dry_cooler", "chiller")
ABS_ZERO_C = -273.15
#: EC fans and VFD pumps do not run below ~20-30 % speed (assumption, stated: typical minimum speed
#: of EC fans / VFD pumps); power at the minimum follows the affinity law.
MIN_SPEED_FRACTION = 0.25
#: Carnot-scaled COP is bounded to 3x its rating (assumption: real chillers lose the ideal gain at
#: small lifts to fixed losses) and the lift to >= 2 K.
COP_MAX_GAIN, MIN_LIFT_K = 3.0, 2.0
#: Air temperature rise across IT equipment at full load, ~11 K (ASHRAE TC 9.9: 120-160 CFM per kW ->
#: 10-14 K). Used for the rack inlet rise when its CRAH group falls short.
RACK_AIR_DELTA_T_K = 11.0
#: Inlet rise bound when an air group falls short: at most 3x the rack ΔT (assumption: beyond that the
#: room is lost; time-to-throttle handles a total loss as a ramp).
MAX_INLET_RISE_K = 3.0 * RACK_AIR_DELTA_T_K


@dataclass(frozen=True)
class CoolingNetwork:
    """Static structure of one site's cooling (built once from the facility spec)."""

    site_id: str
    rack_ids: tuple[str, ...]
    rack_liquid_fraction: np.ndarray
    rack_flow_lpm: np.ndarray  # design secondary flow per rack (0: air)
    rack_coolant_l: np.ndarray  # coolant held in the rack
    rack_air_limit_w: np.ndarray
    rack_loop: np.ndarray  # CDU group index, -1 for none
    rack_air_group: np.ndarray  # CRAH group index, -1 for none
    loop_ids: tuple[str, ...]
    loop_n_plus_1: np.ndarray  # bool
    loop_setpoint_c: np.ndarray  # secondary supply setpoint (NaN: facility supply + approach)
    cdu_ids: tuple[str, ...]
    cdu_loop: np.ndarray
    cdu_capacity_w: np.ndarray
    cdu_flow_lpm: np.ndarray
    cdu_pump_w: np.ndarray
    cdu_approach_k: np.ndarray
    air_group_ids: tuple[str, ...]
    air_group_n_plus_1: np.ndarray
    crah_ids: tuple[str, ...]
    crah_group: np.ndarray
    crah_capacity_w: np.ndarray
    crah_supply_c: np.ndarray
    crah_fan_w: np.ndarray
    plant_ids: tuple[str, ...]
    plant_kind: np.ndarray  # TOWER / DRY_COOLER / CHILLER
    plant_capacity_w: np.ndarray
    plant_approach_k: np.ndarray
    plant_fan_w: np.ndarray
    plant_cop: np.ndarray  # NaN for towers and dry coolers
    plant_economizer: np.ndarray  # bool
    facility_pump_w: float
    facility_supply_c: float  # setpoint
    design_dry_bulb_c: float
    design_wet_bulb_c: float
    facility_coolant: Coolant
    secondary_coolant: Coolant
    # power curves (x: load / flow / speed share, y: share of rated power) and each component's index
    # into them; -1 or None: the default (fans and pumps: affinity law; compressors: constant COP)
    curves: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
    cdu_pump_curve: np.ndarray | None = None
    crah_fan_curve: np.ndarray | None = None
    plant_fan_curve: np.ndarray | None = None
    plant_compressor_curve: np.ndarray | None = None

    @property
    def n_racks(self) -> int:
        return len(self.rack_ids)


@dataclass(frozen=True)
class Conditions:
    """What the plant is living through: setpoints, ambient, equipment health (what-ifs edit these)."""

    facility_supply_c: float  # setpoint of the facility water supply
    dry_bulb_c: float
    wet_bulb_c: float
    cdu_up: np.ndarray  # bool per CDU
    cdu_flow_factor: np.ndarray  # pump speed / flow share per CDU (0..1)
    crah_up: np.ndarray  # bool per CRAH
    crah_supply_c: np.ndarray  # supply air setpoint per CRAH
    plant_up: np.ndarray  # bool per plant unit
    rack_flow_factor: np.ndarray  # valve / blockage per rack (0..1)
    # measured values that replace the model's where finite (measured beats assumed; NaN / None: not measured).
    # The live twin sets them from fresh equipment telemetry (``CoolingLive.conditions_at``).
    loop_supply_meas_c: np.ndarray | None = None  # secondary supply per loop
    loop_flow_meas_lpm: np.ndarray | None = None  # secondary flow per loop (its healthy CDUs' pumps)
    plant_fan_meas_w: float = float("nan")  # towers / dry coolers, site total
    plant_compressor_meas_w: float = float("nan")  # chillers, site total

    @property
    def measured(self) -> bool:
        return (
            _any_finite(self.loop_supply_meas_c)
            or _any_finite(self.loop_flow_meas_lpm)
            or np.isfinite(self.plant_fan_meas_w)
            or np.isfinite(self.plant_compressor_meas_w)
        )

    def without_measurements(self) -> Conditions:
        return replace(
            self,
            loop_supply_meas_c=None,
            loop_flow_meas_lpm=None,
            plant_fan_meas_w=float("nan"),
            plant_compressor_meas_w=float("nan"),
        )

    def with_(self, **changes) -> Conditions:
        return replace(self, **changes)


def _any_finite(a: np.ndarray | None) -> bool:
    return a is not None and bool(np.isfinite(a).any())


def _measured_or(meas: np.ndarray | None, model: np.ndarray) -> np.ndarray:
    return model if meas is None else np.where(np.isfinite(meas), meas, model)


def keep_measured(net: CoolingNetwork, before: Conditions, after: Conditions) -> Conditions:
    """A what-if's conditions with the measurements kept only where the change leaves their inputs alone: a
    loop's measured supply and flow while none of its CDUs changed (health, flow) and the facility supply
    setpoint did not move; the plant's measured power while the plant's units, ambient and setpoint did not
    change. Everything the what-if touches is the model's (a measurement describes now, not the change)."""
    if not before.measured:
        return after.without_measurements()
    cdu_same = (before.cdu_up == after.cdu_up) & (before.cdu_flow_factor == after.cdu_flow_factor)
    n_loops = len(net.loop_ids)
    changed = _bincount(net.cdu_loop, (~cdu_same).astype(float), n_loops) > 0
    if after.facility_supply_c != before.facility_supply_c:
        changed[:] = True
    plant_same = (
        bool(np.array_equal(before.plant_up, after.plant_up))
        and after.dry_bulb_c == before.dry_bulb_c
        and after.wet_bulb_c == before.wet_bulb_c
        and after.facility_supply_c == before.facility_supply_c
    )

    def loops(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.where(changed, np.nan, a)

    return replace(
        after,
        loop_supply_meas_c=loops(before.loop_supply_meas_c),
        loop_flow_meas_lpm=loops(before.loop_flow_meas_lpm),
        plant_fan_meas_w=before.plant_fan_meas_w if plant_same else float("nan"),
        plant_compressor_meas_w=before.plant_compressor_meas_w if plant_same else float("nan"),
    )


def _spread(total: float, model: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """A measured site total over units: in proportion to the model's per-unit values, else to ``weight``."""
    if not np.isfinite(total):
        return model
    for w in (model, weight):
        s = float(np.sum(w))
        if s > 0:
            return total * w / s
    return np.zeros_like(model)


def design_conditions(
    net: CoolingNetwork, dry_bulb_c: float | None = None, wet_bulb_c: float | None = None
) -> Conditions:
    """Everything healthy at the spec's setpoints; ambient at design unless given."""
    return Conditions(
        facility_supply_c=net.facility_supply_c,
        dry_bulb_c=net.design_dry_bulb_c if dry_bulb_c is None else dry_bulb_c,
        wet_bulb_c=net.design_wet_bulb_c if wet_bulb_c is None else wet_bulb_c,
        cdu_up=np.ones(len(net.cdu_ids), bool),
        cdu_flow_factor=np.ones(len(net.cdu_ids)),
        crah_up=np.ones(len(net.crah_ids), bool),
        crah_supply_c=net.crah_supply_c.copy(),
        plant_up=np.ones(len(net.plant_ids), bool),
        rack_flow_factor=np.ones(net.n_racks),
    )


@dataclass(frozen=True)
class CoolingState:
    # racks
    rack_it_w: np.ndarray
    rack_liquid_w: np.ndarray
    rack_air_w: np.ndarray
    rack_flow_lpm: np.ndarray
    rack_supply_c: np.ndarray  # secondary supply (NaN: air rack)
    rack_return_c: np.ndarray  # +inf: heat with no flow
    rack_coolant_c: np.ndarray  # what the GPUs see: mean of supply and return (liquid) or inlet air
    rack_inlet_air_c: np.ndarray
    rack_air_over_limit: np.ndarray  # bool: more air heat than the rack's air side takes
    # CDU loops
    loop_heat_w: np.ndarray
    loop_capacity_w: np.ndarray  # healthy members
    loop_capacity_if_one_fails_w: np.ndarray  # healthy members minus the largest healthy one
    loop_flow_lpm: np.ndarray  # pumped by healthy members (at most the racks' design flow)
    loop_flow_demand_lpm: np.ndarray  # racks' design flow
    loop_supply_c: np.ndarray
    loop_return_c: np.ndarray
    loop_carries: np.ndarray  # bool: heat and flow within what its healthy members give
    loop_survives_one_more: np.ndarray  # bool: still carries if its largest healthy member fails
    cdu_heat_w: np.ndarray
    cdu_load_fraction: np.ndarray
    cdu_flow_lpm: np.ndarray
    cdu_pump_w: np.ndarray
    # air
    air_heat_w: np.ndarray
    air_capacity_w: np.ndarray
    air_capacity_if_one_fails_w: np.ndarray
    air_carries: np.ndarray
    air_survives_one_more: np.ndarray
    air_inlet_rise_k: np.ndarray
    crah_heat_w: np.ndarray
    crah_load_fraction: np.ndarray
    crah_fan_w: np.ndarray
    crah_supply_c: np.ndarray  # supply air achieved: the setpoint, or the facility supply when that is warmer
    # plant
    plant_load_w: float  # heat to reject: IT + pumps + fans
    plant_capacity_w: float  # healthy units at this ambient
    plant_unit_heat_w: np.ndarray
    plant_fan_w: np.ndarray
    plant_compressor_w: np.ndarray
    facility_pump_w: float
    facility_supply_c: float  # achieved (>= setpoint when the plant falls short)
    plant_power_w: float  # fans + compressors + facility pumps
    cooling_power_w: float  # plant + CDU pumps + CRAH fans: what goes to the power twin
    it_power_w: float

    @property
    def pue_cooling_part(self) -> float | None:
        """(IT + cooling) / IT: the cooling share of PUE (the power twin adds chain losses). None when the IT
        power is 0: PUE is undefined there (The Green Grid, WP#49: PUE = total facility / IT energy), never NaN."""
        if not self.it_power_w > 0:
            return None
        return (self.it_power_w + self.cooling_power_w) / self.it_power_w


def _bincount(idx: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
    ok = idx >= 0
    return np.bincount(idx[ok], weights=w[ok], minlength=n).astype(float)


def _group_max(idx: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n)
    ok = idx >= 0
    np.maximum.at(out, idx[ok], w[ok])
    return out


def _share(
    member_group: np.ndarray, member_cap: np.ndarray, group_heat: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Healthy members share their group's heat by capacity: per member heat, group capacity and the
    capacity left if the largest healthy member fails."""
    cap = _bincount(member_group, member_cap, n)
    big = _group_max(member_group, member_cap, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(cap > 0, group_heat / np.where(cap > 0, cap, 1.0), 0.0)
    heat = np.where(member_group >= 0, frac[np.maximum(member_group, 0)] * member_cap, 0.0)
    return heat, cap, cap - big


def _at(group_values: np.ndarray, idx: np.ndarray, fill: float) -> np.ndarray:
    """Per member value of its group; ``fill`` where the member has none (index -1)."""
    return np.append(np.asarray(group_values, float), fill)[idx]


def _affinity(fraction: np.ndarray, running: np.ndarray) -> np.ndarray:
    """Power share of a fan or pump at a flow share: speed³, not below the minimum speed."""
    s = np.clip(fraction, MIN_SPEED_FRACTION, 1.0)
    return np.where(running, s**3, 0.0)


def _curved(
    net: CoolingNetwork, fraction: np.ndarray, running: np.ndarray, index: np.ndarray | None, default: str
) -> np.ndarray:
    """Power share per component: its curve where it has one, else the affinity law ("affinity") or 1
    ("constant")."""
    frac = np.asarray(fraction, float)
    out = _affinity(frac, running) if default == "affinity" else np.where(running, 1.0, 0.0)
    if index is None or not net.curves:
        return out
    for k in np.unique(index[index >= 0]):
        sel = index == k
        x, y = net.curves[k]
        out = np.where(sel, np.where(running, np.interp(frac, x, y), 0.0), out)
    return out


def _carnot_cop(evap_c: np.ndarray, cond_c: np.ndarray) -> np.ndarray:
    return (np.asarray(evap_c) - ABS_ZERO_C) / np.maximum(np.asarray(cond_c) - evap_c, MIN_LIFT_K)


#: AHRI 550/590 rating conditions of a water-cooled chiller: 6.7 °C leaving chilled water, 29.4 °C
#: entering condenser water (see twin.core.facility.cooling).
RATING_EVAP_C, RATING_COND_C = 6.7, 29.4
#: Facility water ΔT at design: 10 K (OCP liquid-cooling sizing, DESIGN §8).
FACILITY_DESIGN_DT_K = 10.0


def plant_power(
    net: CoolingNetwork, cond: Conditions, load_w: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float, float]:
    """Heat per unit, fan and compressor power per unit, facility pump power, achieved facility
    supply and the plant's capacity at this ambient, for a heat load to reject. Healthy units share
    the heat by rating."""
    up = cond.plant_up
    sink_c = np.where(net.plant_kind == DRY_COOLER, cond.dry_bulb_c, cond.wet_bulb_c)
    setpoint = cond.facility_supply_c
    rated = np.where(up, net.plant_capacity_w, 0.0)
    total_rated = float(rated.sum())
    heat = rated / total_rated * load_w if total_rated > 0 else np.zeros_like(rated)
    share = heat / net.plant_capacity_w  # load fraction of each unit's rating
    # free cooling: fans alone hold the setpoint (towers, dry coolers; chillers with an economizer
    # when the heat sink + approach is below the setpoint)
    free = (net.plant_kind != CHILLER) | (net.plant_economizer & (sink_c + net.plant_approach_k <= setpoint))
    compressor_on = up & ~free
    # full-airflow capacity at the setpoint scales with the driving difference the ambient leaves
    driving = np.maximum(setpoint - sink_c, 0.0)
    approach = np.maximum(net.plant_approach_k, 1e-9)
    fan_capacity = net.plant_capacity_w * driving / approach
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = np.where(
            compressor_on,
            share,
            np.where(fan_capacity > 0, heat / np.where(fan_capacity > 0, fan_capacity, 1.0), np.inf),
        )
    fans = net.plant_fan_w * _curved(
        net, np.minimum(speed, 1.0), up & (heat > 0), net.plant_fan_curve, "affinity"
    )
    ratio = _carnot_cop(setpoint, sink_c + net.plant_approach_k) / _carnot_cop(RATING_EVAP_C, RATING_COND_C)
    cop = net.plant_cop * np.minimum(ratio, COP_MAX_GAIN)
    part_load = _curved(net, share, compressor_on, net.plant_compressor_curve, "constant")
    compressor = np.where(compressor_on, heat / np.where(compressor_on, cop, 1.0) * part_load, 0.0)
    # leaving water: a fan unit past full speed is UA-limited (sink + approach x load share, which is the
    # setpoint exactly at full speed); a chiller past its rating lets its water warm by the design ΔT
    # per rating it is over
    leave = np.where(
        compressor_on,
        setpoint + FACILITY_DESIGN_DT_K * np.maximum(share - 1.0, 0.0),
        np.where(speed > 1.0, sink_c + net.plant_approach_k * share, setpoint),
    )
    if total_rated <= 0:
        supply = float("inf") if load_w > 0 else setpoint
    else:
        supply = float(np.sum(heat * leave) / load_w) if load_w > 0 else setpoint
        supply = max(supply, setpoint)
    capacity = float(np.sum(np.where(up, np.where(compressor_on, net.plant_capacity_w, fan_capacity), 0.0)))
    pumps = net.facility_pump_w * float(
        _affinity(np.array([load_w / total_rated if total_rated else 0.0]), np.array([load_w > 0]))[0]
    )
    return heat, fans, compressor, pumps, supply, capacity


def evaluate(net: CoolingNetwork, rack_it_w: np.ndarray, cond: Conditions) -> CoolingState:
    """One steady-state evaluation of the whole cooling chain for the racks' IT power (W)."""
    it = np.maximum(np.nan_to_num(np.asarray(rack_it_w, dtype=float), nan=0.0), 0.0)
    liquid = net.rack_liquid_fraction * it
    air = it - liquid  # closes exactly: liquid + air = IT
    n_loops, n_air = len(net.loop_ids), len(net.air_group_ids)
    # --- CDU loops
    cdu_ok = cond.cdu_up & (cond.cdu_flow_factor > 0)
    # what each CDU's pump can give (a slowed or worn pump: flow factor), and what the loop needs
    cdu_avail = np.where(cond.cdu_up, net.cdu_flow_lpm * np.clip(cond.cdu_flow_factor, 0.0, 1.0), 0.0)
    loop_avail = _bincount(net.cdu_loop, cdu_avail, n_loops)
    demand = _bincount(net.rack_loop, net.rack_flow_lpm, n_loops)
    loop_flow = np.minimum(loop_avail, demand)  # pumps slow down to the racks' design flow
    loop_flow = np.maximum(_measured_or(cond.loop_flow_meas_lpm, loop_flow), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(demand > 0, loop_flow / np.where(demand > 0, demand, 1.0), 0.0)
        run = np.where(loop_avail > 0, loop_flow / np.where(loop_avail > 0, loop_avail, 1.0), 0.0)
    cdu_flow = cdu_avail * _at(run, net.cdu_loop, 0.0)  # healthy members share the flow
    has_loop = net.rack_loop >= 0
    li = net.rack_loop
    rack_flow = np.where(
        has_loop, net.rack_flow_lpm * _at(ratio, li, 0.0) * np.clip(cond.rack_flow_factor, 0.0, 1.0), 0.0
    )
    loop_heat = _bincount(net.rack_loop, liquid, n_loops)
    cdu_cap = np.where(cdu_ok, net.cdu_capacity_w, 0.0)
    cdu_heat, loop_cap, loop_cap_1 = _share(net.cdu_loop, cdu_cap, loop_heat, n_loops)
    flow_1 = loop_avail - _group_max(net.cdu_loop, cdu_avail, n_loops)
    cdu_lf = cdu_heat / net.cdu_capacity_w if len(net.cdu_ids) else np.zeros(0)
    approach = _bincount(net.cdu_loop, cdu_heat * net.cdu_approach_k, n_loops)  # Σ heat·approach
    with np.errstate(divide="ignore", invalid="ignore"):
        # capacity-weighted approach x load fraction (members share by capacity, so one load fraction)
        loop_lf = np.where(loop_cap > 0, loop_heat / np.where(loop_cap > 0, loop_cap, 1.0), np.inf)
        mean_approach = np.where(
            loop_heat > 0,
            approach / np.where(loop_heat > 0, loop_heat, 1.0),
            _bincount(net.cdu_loop, net.cdu_approach_k, n_loops)
            / np.maximum(np.bincount(net.cdu_loop[net.cdu_loop >= 0], minlength=n_loops), 1),
        )
    # no healthy CDU: no supply to speak of (NaN); the racks' coolant heats (see whatif.coolant_paths)
    loop_rise = np.where(
        loop_cap > 0,
        np.where(loop_heat > 0, mean_approach * np.where(loop_cap > 0, loop_lf, 0.0), 0.0),
        np.nan,
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = np.where(net.cdu_flow_lpm > 0, cdu_flow / net.cdu_flow_lpm, 0.0)
    cdu_pump = net.cdu_pump_w * _curved(
        net, speed, cond.cdu_up & (cdu_flow > 0), net.cdu_pump_curve, "affinity"
    )
    # --- air groups
    crah_cap = np.where(cond.crah_up, net.crah_capacity_w, 0.0)
    air_heat = _bincount(net.rack_air_group, air, n_air)
    crah_heat, air_cap, air_cap_1 = _share(net.crah_group, crah_cap, air_heat, n_air)
    crah_lf = crah_heat / net.crah_capacity_w if len(net.crah_ids) else np.zeros(0)
    crah_fan = net.crah_fan_w * _curved(
        net, crah_lf, cond.crah_up & (crah_heat > 0), net.crah_fan_curve, "affinity"
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        short = np.where(
            air_heat > 0, np.maximum(air_heat - air_cap, 0.0) / np.where(air_heat > 0, air_heat, 1.0), 0.0
        )
        rise = np.where(
            short >= 1.0,
            MAX_INLET_RISE_K,
            np.minimum(RACK_AIR_DELTA_T_K * short / np.maximum(1.0 - short, 1e-9), MAX_INLET_RISE_K),
        )
    group_supply = _bincount(
        net.crah_group, np.where(cond.crah_up, cond.crah_supply_c * net.crah_capacity_w, 0.0), n_air
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        any_cap = _bincount(net.crah_group, np.where(cond.crah_up, net.crah_capacity_w, 0.0), n_air)
        all_cap = _bincount(net.crah_group, net.crah_capacity_w, n_air)
        group_supply = np.where(
            any_cap > 0,
            group_supply / np.where(any_cap > 0, any_cap, 1.0),
            _bincount(net.crah_group, cond.crah_supply_c * net.crah_capacity_w, n_air)
            / np.where(all_cap > 0, all_cap, 1.0),
        )
    # --- plant
    load = float(it.sum() + cdu_pump.sum() + crah_fan.sum())
    unit_heat, fans, comp, pumps, fac_supply, plant_cap = plant_power(net, cond, load)
    # CRAHs are chilled-water coils on the facility water (their heat is in the plant's load): a coil cannot
    # cool air below the water entering it (second law), so their supply air is at least the facility supply
    # achieved -- a warmer setpoint or a plant that falls short warms the air racks' inlet too
    crah_supply = np.where(net.crah_group >= 0, np.maximum(cond.crah_supply_c, fac_supply), cond.crah_supply_c)
    group_supply = np.maximum(group_supply, fac_supply)
    chiller = net.plant_kind == CHILLER
    fans = _spread(cond.plant_fan_meas_w, fans, np.where(cond.plant_up & ~chiller, unit_heat + 1.0, 0.0))
    comp = _spread(
        cond.plant_compressor_meas_w, comp, np.where(cond.plant_up & chiller, unit_heat + 1.0, 0.0)
    )
    # --- temperatures
    # a CDU holds its secondary setpoint while its heat exchanger's approach allows, else supply + approach
    loop_supply = np.fmax(fac_supply + loop_rise, net.loop_setpoint_c)
    loop_supply = np.where(np.isnan(loop_rise), np.nan, loop_supply)
    loop_supply = _measured_or(cond.loop_supply_meas_c, loop_supply)
    loop_rate = net.secondary_coolant.capacity_rate_w_per_k(loop_flow, loop_supply)
    with np.errstate(divide="ignore", invalid="ignore"):
        loop_return = loop_supply + np.where(
            loop_rate > 0,
            loop_heat / np.where(loop_rate > 0, loop_rate, 1.0),
            np.where(loop_heat > 0, np.inf, 0.0),
        )
    rack_supply = np.where(has_loop, _at(loop_supply, li, np.nan), np.nan)
    rack_dt = np.where(
        has_loop, delta_t_k(net.secondary_coolant, liquid, rack_flow, np.nan_to_num(rack_supply)), 0.0
    )
    rack_return = np.where(has_loop, rack_supply + rack_dt, np.nan)
    ai = net.rack_air_group
    inlet = np.where(ai >= 0, _at(group_supply + rise, ai, np.nan), np.nan)
    coolant_at_gpu = np.where(has_loop, rack_supply + 0.5 * rack_dt, inlet)
    plant_power_w = float(fans.sum() + comp.sum() + pumps)
    return CoolingState(
        rack_it_w=it,
        rack_liquid_w=liquid,
        rack_air_w=air,
        rack_flow_lpm=rack_flow,
        rack_supply_c=rack_supply,
        rack_return_c=rack_return,
        rack_coolant_c=coolant_at_gpu,
        rack_inlet_air_c=inlet,
        rack_air_over_limit=air > net.rack_air_limit_w * (1 + 1e-9),
        loop_heat_w=loop_heat,
        loop_capacity_w=loop_cap,
        loop_capacity_if_one_fails_w=loop_cap_1,
        loop_flow_lpm=loop_flow,
        loop_flow_demand_lpm=demand,
        loop_supply_c=loop_supply,
        loop_return_c=loop_return,
        loop_carries=(loop_heat <= loop_cap * (1 + 1e-9)) & (loop_avail >= demand * (1 - 1e-9)),
        loop_survives_one_more=(loop_heat <= loop_cap_1 * (1 + 1e-9)) & (flow_1 >= demand * (1 - 1e-9)),
        cdu_heat_w=cdu_heat,
        cdu_load_fraction=cdu_lf,
        cdu_flow_lpm=cdu_flow,
        cdu_pump_w=cdu_pump,
        air_heat_w=air_heat,
        air_capacity_w=air_cap,
        air_capacity_if_one_fails_w=air_cap_1,
        air_carries=air_heat <= air_cap * (1 + 1e-9),
        air_survives_one_more=air_heat <= air_cap_1 * (1 + 1e-9),
        air_inlet_rise_k=rise,
        crah_heat_w=crah_heat,
        crah_load_fraction=crah_lf,
        crah_fan_w=crah_fan,
        crah_supply_c=crah_supply,
        plant_load_w=load,
        plant_capacity_w=plant_cap,
        plant_unit_heat_w=unit_heat,
        plant_fan_w=fans,
        plant_compressor_w=comp,
        facility_pump_w=pumps,
        facility_supply_c=fac_supply,
        plant_power_w=plant_power_w,
        cooling_power_w=plant_power_w + float(cdu_pump.sum() + crah_fan.sum()),
        it_power_w=float(it.sum()),
    )
