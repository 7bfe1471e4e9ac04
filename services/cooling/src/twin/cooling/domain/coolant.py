"""Coolant properties and the heat balance Q = ṁ·c_p·ΔT (DESIGN §8 "Cooling").

Properties are data (the facility spec's coolant tables: density and c_p against temperature,
linear between points, held beyond the ends); everything here is vectorized.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: litres per minute -> cubic metres per second
LPM_TO_M3_S = 1.0 / 60_000.0


@dataclass(frozen=True)
class Coolant:
    name: str
    temps_c: np.ndarray
    density_kg_m3: np.ndarray
    cp_j_per_kg_k: np.ndarray

    def density(self, temp_c: np.ndarray | float) -> np.ndarray:
        return np.interp(temp_c, self.temps_c, self.density_kg_m3)

    def cp(self, temp_c: np.ndarray | float) -> np.ndarray:
        return np.interp(temp_c, self.temps_c, self.cp_j_per_kg_k)

    def capacity_rate_w_per_k(self, flow_lpm: np.ndarray | float, temp_c: np.ndarray | float) -> np.ndarray:
        """ṁ·c_p in W/K for a volumetric flow at a temperature."""
        return np.asarray(flow_lpm, dtype=float) * LPM_TO_M3_S * self.density(temp_c) * self.cp(temp_c)


def delta_t_k(
    coolant: Coolant, heat_w: np.ndarray | float, flow_lpm: np.ndarray | float, temp_c: np.ndarray | float
) -> np.ndarray:
    """ΔT = Q / (ṁ c_p). No flow with heat: +inf (the loop cannot carry it); no flow, no heat: 0."""
    heat = np.asarray(heat_w, dtype=float)
    rate = coolant.capacity_rate_w_per_k(flow_lpm, temp_c)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(rate > 0, heat / np.where(rate > 0, rate, 1.0), np.where(heat > 0, np.inf, 0.0))
    return out


def heat_w(
    coolant: Coolant, flow_lpm: np.ndarray | float, supply_c: np.ndarray | float, return_c: np.ndarray | float
) -> np.ndarray:
    """Q = ṁ c_p (T_return - T_supply), properties at the supply temperature (as ``delta_t_k`` is
    called by the network, so the two invert each other)."""
    s, r = np.asarray(supply_c, dtype=float), np.asarray(return_c, dtype=float)
    return coolant.capacity_rate_w_per_k(flow_lpm, s) * (r - s)
