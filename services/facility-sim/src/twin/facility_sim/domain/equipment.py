"""The simulator's own heat model of the cooling equipment (pure numpy): what CDUs, CRAHs and the plant would
read while the simulated racks run. It plays reality for the twins, so it is deliberately simple and its own
(nothing here comes from the cooling twin):

* all the electrical power a rack takes in becomes heat; ``liquid_fraction`` of it goes into its CDU group's
  secondary loop, the rest into the air of its CRAH group. A group's heat is shared by its units in proportion
  to their rated capacity (every unit healthy: the simulator injects no equipment failures).
* CDU secondary loop: flow = the design flow of the group's racks (at most what the group's pumps give),
  supply at the group's setpoint or ``CDU_APPROACH_K`` above the facility water, return = supply + Q/(ṁ·c_p).
  Primary side: facility water at its setpoint, the same flow as the secondary (equal capacity rates), return =
  primary supply + Q/(ṁ·c_p). Pump speed = flow / rated flow; differential pressure ∝ speed² from
  ``CDU_DESIGN_DP_KPA``.
* CRAH: supply air at its setpoint; fans follow the load (never below ``FAN_MIN_SPEED``), return air = supply +
  Q/(ṁ_air·c_p,air) with the design air flow giving ``CRAH_DESIGN_RISE_K`` at rated capacity.
* Plant: outdoor air at the spec's design dry / wet bulb; tower and dry-cooler fans at (load share)³ of their
  rated power (never below ``FAN_MIN_SPEED``³), chillers at heat / COP plus their fans; the heat is the
  simulated racks' power.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: secondary supply above the facility water when a loop has no setpoint (the simulator's rack coolant
#: uses the same 3 K, ``layout.CDU_APPROACH_K``)
CDU_APPROACH_K = 3.0
#: secondary differential pressure at the CDU's rated flow (typical CDU spec sheets: 100-200 kPa)
CDU_DESIGN_DP_KPA = 150.0
#: air temperature rise across a CRAH coil at rated capacity and full airflow
CRAH_DESIGN_RISE_K = 12.0
#: EC fans do not turn slower than this share of full speed
FAN_MIN_SPEED = 0.3
AIR_CP_J_PER_KG_K = 1006.0


@dataclass(frozen=True, eq=False)
class LoopReadings:
    """Per CDU (arrays of n_cdus)."""

    heat_w: np.ndarray
    secondary_flow_lpm: np.ndarray
    secondary_supply_c: np.ndarray
    secondary_return_c: np.ndarray
    primary_flow_lpm: np.ndarray
    primary_supply_c: np.ndarray
    primary_return_c: np.ndarray
    pump_speed_pct: np.ndarray
    dp_kpa: np.ndarray


@dataclass(frozen=True, eq=False)
class AirReadings:
    """Per CRAH."""

    heat_w: np.ndarray
    supply_c: np.ndarray
    return_c: np.ndarray
    fan_speed_pct: np.ndarray


def share_by_capacity(group_heat_w: np.ndarray, unit_group: np.ndarray, capacity_w: np.ndarray) -> np.ndarray:
    """Each unit's part of its group's heat, in proportion to its capacity within the group."""
    cap_of_group = np.bincount(unit_group, weights=capacity_w, minlength=len(group_heat_w))
    return group_heat_w[unit_group] * capacity_w / np.maximum(cap_of_group[unit_group], 1e-9)


def cdu_readings(
    rack_heat_w: np.ndarray,
    rack_liquid_fraction: np.ndarray,
    rack_flow_lpm: np.ndarray,
    rack_loop: np.ndarray,
    cdu_loop: np.ndarray,
    cdu_capacity_w: np.ndarray,
    cdu_flow_lpm: np.ndarray,
    loop_supply_c: np.ndarray,
    facility_supply_c: float,
    density_kg_m3: float,
    cp_j_per_kg_k: float,
) -> LoopReadings:
    """``rack_loop``: the CDU group of each simulated rack (-1: none); ``loop_supply_c`` per group (its setpoint,
    else facility water + ``CDU_APPROACH_K``)."""
    n_loops = len(loop_supply_c)
    on = rack_loop >= 0
    idx = np.where(on, rack_loop, 0)
    q_rack = np.where(on, np.maximum(rack_heat_w, 0.0) * rack_liquid_fraction, 0.0)
    loop_heat = np.bincount(idx, weights=q_rack, minlength=n_loops)
    loop_demand = np.bincount(idx, weights=np.where(on, rack_flow_lpm, 0.0), minlength=n_loops)
    loop_pumps = np.bincount(cdu_loop, weights=cdu_flow_lpm, minlength=n_loops)
    loop_flow = np.minimum(loop_demand, loop_pumps)
    heat = share_by_capacity(loop_heat, cdu_loop, cdu_capacity_w)
    flow = loop_flow[cdu_loop] * cdu_flow_lpm / np.maximum(loop_pumps[cdu_loop], 1e-9)
    m_kg_s = flow / 60.0 / 1000.0 * density_kg_m3
    rise = np.where(m_kg_s > 0, heat / np.maximum(m_kg_s * cp_j_per_kg_k, 1e-9), 0.0)
    supply = loop_supply_c[cdu_loop]
    primary_supply = np.full(len(cdu_loop), float(facility_supply_c))
    speed = np.clip(flow / cdu_flow_lpm, 0.0, 1.0)
    return LoopReadings(
        heat_w=heat, secondary_flow_lpm=flow, secondary_supply_c=supply, secondary_return_c=supply + rise,
        primary_flow_lpm=flow.copy(), primary_supply_c=primary_supply, primary_return_c=primary_supply + rise,
        pump_speed_pct=100.0 * speed, dp_kpa=CDU_DESIGN_DP_KPA * speed * speed)


def crah_readings(
    rack_heat_w: np.ndarray,
    rack_liquid_fraction: np.ndarray,
    rack_air_group: np.ndarray,
    crah_group: np.ndarray,
    crah_capacity_w: np.ndarray,
    crah_supply_c: np.ndarray,
    n_groups: int,
) -> AirReadings:
    on = rack_air_group >= 0
    idx = np.where(on, rack_air_group, 0)
    q_rack = np.where(on, np.maximum(rack_heat_w, 0.0) * (1.0 - rack_liquid_fraction), 0.0)
    heat = share_by_capacity(np.bincount(idx, weights=q_rack, minlength=n_groups), crah_group, crah_capacity_w)
    load = heat / crah_capacity_w
    speed = np.clip(load, FAN_MIN_SPEED, 1.0)
    design_kg_s = crah_capacity_w / (AIR_CP_J_PER_KG_K * CRAH_DESIGN_RISE_K)
    rise = heat / (speed * design_kg_s * AIR_CP_J_PER_KG_K)
    return AirReadings(heat_w=heat, supply_c=crah_supply_c.copy(), return_c=crah_supply_c + rise,
                       fan_speed_pct=100.0 * speed)


def plant_power(
    heat_w: float, unit_capacity_w: np.ndarray, unit_fan_w: np.ndarray, unit_cop: np.ndarray, unit_is_chiller: np.ndarray,
) -> tuple[float, float]:
    """(tower / dry-cooler fan W, chiller W: compressor + its own fans) rejecting ``heat_w``, shared by the units'
    capacity."""
    share = max(heat_w, 0.0) * unit_capacity_w / max(float(unit_capacity_w.sum()), 1e-9)
    load = np.clip(share / unit_capacity_w, 0.0, 1.0)
    speed = np.maximum(load, FAN_MIN_SPEED)
    fans = unit_fan_w * speed**3
    compressor = np.where(unit_is_chiller, share / np.where(unit_cop > 0, unit_cop, 1.0), 0.0)
    return float(fans[~unit_is_chiller].sum()), float((compressor + fans)[unit_is_chiller].sum())
