"""The fast time-to-throttle (per-GPU constants once, float32 grid screen with a float64 fallback near a limit)
gives the same answers, bit for bit, as the straightforward one (every point through ``temperatures_at`` in
float64) on random GPUs: calibrated and uniform time constants, coolant that rises, falls, ramps, a loop lag
equal to the sink's, GPUs already throttling, GPUs that never do, and GPUs whose margin is exactly zero at a
grid point (where float32 alone could pick the wrong grid cell)."""

from __future__ import annotations

import numpy as np
import pytest

from twin.cooling.domain import thermal
from twin.cooling.domain.thermal import (
    THROTTLE_NONE,
    CoolantPath,
    GpuThermal,
    ThermalState,
    temperatures_at,
    time_to_throttle,
    time_to_throttle_direct,
)

HORIZON_S = 3600.0


def _case(rng: np.random.Generator, n: int, uniform_tau: bool):
    r_tot = rng.uniform(0.02, 0.12, n)
    share = rng.uniform(0.1, 0.5, n)
    tau_slow = np.full(n, 14.0) if uniform_tau else rng.choice([7.0, 9.8, 14.0, 19.6, 28.0], n) * rng.uniform(
        0.9, 1.1, n)
    p = GpuThermal(
        r_slow_k_per_w=r_tot * (1 - share),
        r_fast_k_per_w=r_tot * share,
        tau_slow_s=tau_slow,
        tau_fast_s=np.full(n, 0.4) if uniform_tau else rng.uniform(0.2, 0.6, n),
        offset_c=rng.normal(0, 3, n),
        hbm_offset_c=rng.normal(0, 3, n),
        hbm_slow_k_per_w=r_tot * (1 - share) * rng.uniform(0.8, 1.2, n),
        hbm_core_k_per_w=r_tot * share * rng.uniform(0.1, 0.4, n),
        hbm_self_k_per_w=rng.uniform(0.02, 0.1, n),
    )
    core = rng.uniform(100, 900, n)
    hbm = rng.uniform(0, 150, n)
    s = ThermalState(
        z_slow=(core + hbm) * rng.uniform(0.3, 1.2, n),
        z_fast=core * rng.uniform(0.3, 1.2, n),
        z_hbm=hbm * rng.uniform(0.3, 1.2, n),
        coolant_c=rng.uniform(18, 40, n),
    )
    now = s.coolant_c + rng.normal(0, 2, n)
    tau_loop = rng.uniform(5, 600, n)
    same = rng.random(n) < 0.1
    tau_loop[same] = tau_slow[same]                    # the τ_loop = τ_slow limit
    path = CoolantPath(
        now_c=now,
        final_c=now + rng.uniform(-5, 25, n),
        tau_s=tau_loop,
        ramp_k_per_s=np.where(rng.random(n) < 0.2, rng.uniform(0, 0.02, n), 0.0),
    )
    slowdown = rng.uniform(70, 110, n)
    hbm_max = rng.uniform(85, 105, n)
    return p, s, core, hbm, path, slowdown, hbm_max


def _same(args) -> tuple[np.ndarray, np.ndarray]:
    fast_t, fast_w = time_to_throttle(*args, HORIZON_S)
    ref_t, ref_w = time_to_throttle_direct(*args, HORIZON_S)
    np.testing.assert_array_equal(fast_t, ref_t)
    np.testing.assert_array_equal(fast_w, ref_w)
    return ref_t, ref_w


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("uniform_tau", [True, False])
def test_fast_answers_are_the_straightforward_ones_bit_for_bit(seed, uniform_tau):
    t, which = _same(_case(np.random.default_rng(seed), 4000, uniform_tau))
    # the cases cover every branch: now, later within the horizon, never
    assert (t == 0).any() and (np.isfinite(t) & (t > 0)).any() and np.isinf(t).any()
    assert ((which == THROTTLE_NONE) == np.isinf(t)).all()


@pytest.mark.parametrize("seed", range(4))
def test_a_margin_of_zero_at_a_grid_point_is_decided_in_float64(seed):
    """Each GPU's slowdown set to its own die temperature at one grid time (and its HBM limit just above
    its HBM temperature there, so the die decides): float32 cannot tell the sign, the float64 fallback must."""
    rng = np.random.default_rng(100 + seed)
    p, s, core, hbm, path, _, _ = _case(rng, 3000, uniform_tau=bool(seed % 2))
    times = np.concatenate([[0.0], np.geomspace(0.25, HORIZON_S, 32)])
    k = rng.integers(1, len(times), 3000)
    g, h = temperatures_at(p, s, core, hbm, path, times[k][:, None])
    slowdown = g[:, 0] + rng.integers(-1, 2, 3000) * np.spacing(g[:, 0])   # 0 or 1 ulp either side
    hbm_max = np.maximum(h[:, 0], h[:, 0] + 1e-9)
    args = (p, s, core, hbm, path, slowdown, hbm_max)
    _same(args)
    first, doubt = thermal._Margins(*args).grid32(times, HORIZON_S)
    assert doubt.mean() > 0.5          # most of these sit at a limit: they took the float64 path


def test_non_finite_inputs_give_the_same_answers():
    rng = np.random.default_rng(7)
    p, s, core, hbm, path, slowdown, hbm_max = _case(rng, 500, uniform_tau=False)
    now = path.now_c.copy()
    now[:20] = np.nan
    path = CoolantPath(now_c=now, final_c=path.final_c, tau_s=path.tau_s, ramp_k_per_s=path.ramp_k_per_s)
    _same((p, s, core, hbm, path, slowdown, hbm_max))
