"""GPU board power, SM clock under a power cap, and a first-order thermal model (vectorized).

Power model (per GPU):

    P(f) = P_idle + (P_max − P_idle) · D · (f / f_max)^K
    D    = A_TENSOR · tensor_active + B_SM · sm_active + C_DRAM · dram_active

P_max is the board limit (TDP, 700 W for H100 SXM); D is the dynamic activity: ≈1 for a dense
bf16 matmul at boost clock (it reaches the limit), ≈0.5 for a memory-bound kernel that keeps every
SM "active" and the GPU 100 % "utilized" but mostly waits on HBM. The exponent K = 2.5 stands for
dynamic power ∝ f·V² with voltage roughly tracking frequency in the DVFS range (f^2..3).

Power cap: when P(f_boost) would exceed the cap, the GPU lowers its SM clock, in 15 MHz steps
(H100 clock granularity), to the highest clock whose power is ≤ cap — it never draws more.

Thermal model: first-order RC per GPU die and per HBM stack, driven by a reference temperature
(cold-aisle air for air-cooled racks, coolant supply for liquid-cooled racks):

    T_ss = T_ref + R · P,    T(t+dt) = T_ss + (T(t) − T_ss) · exp(−dt / τ)
"""

from __future__ import annotations

import numpy as np

# Coefficients of the dynamic-activity term D (dimensionless; dense matmul ≈ 0.98, memory-bound ≈ 0.49).
A_TENSOR = 0.80
B_SM = 0.20
C_DRAM = 0.30
CLOCK_EXPONENT = 2.5
CLOCK_STEP_MHZ = 15.0
IDLE_CLOCK_RATIO = 0.175          # H100: ~345 MHz of 1980 MHz when idle

# Thermal constants (K/W and s). Air: 25 °C inlet + 0.075·700 W ≈ 78 °C at TDP; liquid: cold plates.
R_GPU_AIR_K_PER_W = 0.075
R_GPU_LIQUID_K_PER_W = 0.045
# A cold plate is designed for its GPU: vendors rate direct liquid cooling by the coolant temperature at which
# the GPU at TDP stays below its limits, so the junction-to-coolant rise at TDP, not the K/W, carries across
# GPU generations (a 1,200 W two-die B200 has about twice an H100's 814 mm² of die to spread the heat over).
# The H100 figure above (0.045 K/W x 700 W = 31.5 K) is that rise; R = rise / TDP for liquid-cooled GPUs.
LIQUID_RISE_AT_TDP_K = R_GPU_LIQUID_K_PER_W * 700.0
HBM_R_RATIO = 0.85                # HBM sees ~85 % of the die's thermal rise ...
HBM_OFFSET_K = 4.0                # ... plus its own dissipation
TAU_GPU_S = 25.0
TAU_HBM_S = 40.0


def dynamic_activity(tensor_active: np.ndarray, sm_active: np.ndarray, dram_active: np.ndarray) -> np.ndarray:
    return A_TENSOR * tensor_active + B_SM * sm_active + C_DRAM * dram_active


def power_w(idle_w: np.ndarray, max_w: np.ndarray, activity: np.ndarray, clock_ratio: np.ndarray) -> np.ndarray:
    """Board power at a given activity D and SM clock ratio f/f_max."""
    return idle_w + (max_w - idle_w) * activity * np.power(clock_ratio, CLOCK_EXPONENT)


def capped_clock_and_power(
    idle_w: np.ndarray,
    max_w: np.ndarray,
    cap_w: np.ndarray,
    max_sm_clock_mhz: np.ndarray,
    activity: np.ndarray,
    busy: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(sm_clock_mhz, power_w): boost clock for busy GPUs, idle clock otherwise, lowered to meet the cap."""
    idle_clock = np.floor(max_sm_clock_mhz * IDLE_CLOCK_RATIO / CLOCK_STEP_MHZ) * CLOCK_STEP_MHZ
    want = np.where(busy, max_sm_clock_mhz, idle_clock)
    dyn = (max_w - idle_w) * activity                          # dynamic watts at f_max
    headroom = np.maximum(cap_w - idle_w, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_cap = np.where(dyn > 0, np.power(headroom / np.where(dyn > 0, dyn, 1.0), 1.0 / CLOCK_EXPONENT), np.inf)
    f_cap = np.floor(ratio_cap * max_sm_clock_mhz / CLOCK_STEP_MHZ) * CLOCK_STEP_MHZ
    clock = np.minimum(want, np.maximum(f_cap, CLOCK_STEP_MHZ))
    p = power_w(idle_w, max_w, activity, clock / max_sm_clock_mhz)
    return clock, np.minimum(p, cap_w)


def rc_step(temp_c: np.ndarray, steady_c: np.ndarray, dt_s: float, tau_s: float) -> np.ndarray:
    """One exact step of a first-order RC toward `steady_c` over `dt_s`."""
    return steady_c + (temp_c - steady_c) * np.exp(-dt_s / tau_s)


def steady_temps_c(ref_c: np.ndarray, r_k_per_w: np.ndarray, power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Steady-state (die, HBM) temperatures at constant power."""
    die = ref_c + r_k_per_w * power
    hbm = ref_c + HBM_OFFSET_K + HBM_R_RATIO * r_k_per_w * power
    return die, hbm
