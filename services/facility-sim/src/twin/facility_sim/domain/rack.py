"""Rack power (PDU input per phase) and heat removal (coolant and air), vectorized over racks.

Node power (DC, after the PSU) = Σ GPU power + platform power, where the platform (CPUs, NICs,
fans, NVSwitches) draws 40 % of its rated power at idle and scales linearly with GPU load.
PSU input (AC) = DC / η(load), η from an 80 PLUS Titanium-like curve: 90/94/96/91 % at 10/20/50/100 %
of the node rating. The PDU feeds each node over all phases; per-phase input = rack AC / phases
times a small fixed imbalance.

All electrical input ends up as heat. A liquid-cooled rack puts `liquid_fraction` of it into the
secondary coolant loop (Q = ṁ·c_p·ΔT with the rack's constant flow), the rest into the air; air
flow follows load (fans) from 50 % to 100 % of a design flow sized for a 15 K rise at rated power.
"""

from __future__ import annotations

import numpy as np

PSU_LOAD = np.array([0.0, 0.10, 0.20, 0.50, 1.00])
PSU_EFFICIENCY = np.array([0.80, 0.90, 0.94, 0.96, 0.91])
PLATFORM_IDLE_SHARE = 0.40
PHASE_IMBALANCE = np.array([1.012, 0.994, 0.994])     # L1..L3 share × phases (sums to 3)

WATER_CP_J_PER_KG_K = 4180.0
WATER_DENSITY_KG_PER_L = 0.997
AIR_CP_J_PER_KG_K = 1006.0
AIR_DESIGN_RISE_K = 15.0
FAN_MIN_SHARE = 0.5


def psu_efficiency(load_fraction: np.ndarray) -> np.ndarray:
    return np.interp(np.clip(load_fraction, 0.0, 1.2), PSU_LOAD, PSU_EFFICIENCY)


def node_power(
    gpu_power_w: np.ndarray, gpu_load: np.ndarray, gpu_node: np.ndarray, n_nodes: int,
    platform_w: np.ndarray, node_max_w: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(node DC power = IT power, node AC input power) per node. gpu_load ∈ 0..1 per GPU."""
    gpu_sum = np.bincount(gpu_node, weights=gpu_power_w, minlength=n_nodes)
    counts = np.bincount(gpu_node, minlength=n_nodes)
    load = np.bincount(gpu_node, weights=gpu_load, minlength=n_nodes) / np.maximum(counts, 1)
    dc = gpu_sum + platform_w * (PLATFORM_IDLE_SHARE + (1.0 - PLATFORM_IDLE_SHARE) * load)
    return dc, dc / psu_efficiency(dc / node_max_w)


def pdu_phase_power(rack_ac_w: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """(n_racks, 3) per-phase input power; columns beyond a rack's phase count are 0."""
    out = np.zeros((rack_ac_w.shape[0], 3))
    for n in np.unique(phases):
        sel = phases == n
        share = PHASE_IMBALANCE[:n] / PHASE_IMBALANCE[:n].sum()
        out[np.ix_(sel, np.arange(n))] = rack_ac_w[sel, None] * share[None, :]
    return out


def coolant_temps(
    heat_w: np.ndarray, liquid_fraction: np.ndarray, flow_lpm: np.ndarray, supply_c: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(supply, return) coolant temperature; return = supply + Q_liquid / (ṁ·c_p). 0/0 for air racks."""
    m_kg_s = flow_lpm / 60.0 * WATER_DENSITY_KG_PER_L
    liquid = (liquid_fraction > 0) & (m_kg_s > 0)
    dt = np.where(liquid, liquid_fraction * heat_w / np.where(liquid, m_kg_s * WATER_CP_J_PER_KG_K, 1.0), 0.0)
    return np.where(liquid, supply_c, 0.0), np.where(liquid, supply_c + dt, 0.0)


def air_temps(
    heat_w: np.ndarray, liquid_fraction: np.ndarray, rated_w: np.ndarray, inlet_c: np.ndarray,
) -> np.ndarray:
    """Outlet air temperature from the air share of the heat and load-following air flow."""
    rated_air = (1.0 - liquid_fraction) * rated_w
    design_kg_s = rated_air / (AIR_CP_J_PER_KG_K * AIR_DESIGN_RISE_K)
    load = np.clip(heat_w / np.maximum(rated_w, 1.0), 0.0, 1.0)
    m_kg_s = design_kg_s * (FAN_MIN_SHARE + (1.0 - FAN_MIN_SHARE) * load)
    q_air = (1.0 - liquid_fraction) * heat_w
    return inlet_c + np.where(m_kg_s > 0, q_air / np.where(m_kg_s > 0, m_kg_s * AIR_CP_J_PER_KG_K, 1.0), 0.0)
