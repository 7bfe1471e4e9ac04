"""GPU and HBM temperatures from a thermal RC network, its online calibration, and time-to-throttle.

Where the power goes. Board power splits into the memory path (moving bytes between the HBM stacks
and the GPU: DRAM access and I/O ~3.9 pJ/bit, O'Connor et al. "Fine-Grained DRAM", MICRO 2017, and as
much again on the GPU side of the interface, the PHYs and memory controllers along the die edge beside
the stacks: 7.8 pJ/bit = 62.4 W per TB/s, the power twin's figure; traffic = memory activity × the
spec's peak bandwidth) and the rest, which heats the GPU die's compute area (SMs, tensor cores,
clocks, leakage) where its temperature sensor sits.

How the heat leaves. Die and HBM stacks sit on one package under one heat sink or cold plate:

    P_core -> [die: R_fast, τ_fast < 0.5 s] -> sink <- [HBM: a_hbm] <- P_hbm
                                         sink -> [R_slow, τ_slow ≈ 12-15 s] -> coolant / inlet air

so the die sensor reads  T_gpu = T_c~ + offset + R_slow·z_slow + R_fast·z_fast  where z_slow is the
total power through a first-order lag τ_slow (the sink), z_fast the core power through τ_fast (the
die), and T_c~ the coolant temperature through the sink's lag. HBM heat reaches the die sensor
only through the shared sink, never through the die's own resistance: a memory-bound load at the
same board power reads cooler on the die than a dense matmul (a single resistance fed total board
power cannot see that). The HBM sensor reads
T_hbm = T_c~ + offset_h + a_slow·z_slow + a_core·z_fast + a_hbm·z_hbm (shared sink, the die's
spreading into the stacks, the stacks' own power).

Online calibration. Given τ_slow, both temperatures are linear in their parameters, so each GPU runs
a small bank of τ_slow candidates (the spec's τ × 0.5 ... 2), each a Kalman filter over
(offset, R_slow, R_fast) and (offset_h, a_slow, a_core, a_hbm) with random-walk drift, starting from
the spec's defaults as the prior. Measurements are weighted by a Huber rule on the normalized
innovation (a bad sample cannot drag the fit), missing samples (NaN) are skipped while the filters
keep integrating power, irregular sample intervals are exact (first-order holds over dt). The
candidate with the best predictive (prequential) score wins. Vectorized over GPUs × candidates.

Time-to-throttle. With power held and the coolant following ``T_c(t) = final + (now - final)·e^(-t/τ_loop)
+ ramp·t`` (a what-if's new steady state, reached at the loop's pace; a ramp when the flow stops), every
lag has a closed-form answer; the first time the die reaches its slowdown temperature or the HBM its
limit is found on a log time grid and refined by bisection. GPUs whose bound stays below both limits skip the
search; the grid is screened in float32 and decided in float64 wherever float32 could err (the answers are the
all-float64 ones, bit for bit: ``time_to_throttle_direct`` is the reference).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

#: Memory-path energy per bit: DRAM core + DRAM-side I/O ~3.9 pJ/bit (O'Connor et al., MICRO 2017,
#: HBM2), doubled for the GPU side of the interface (PHY, controllers; the power twin's stated
#: assumption, twin.power.domain.gpu HBM_PJ_PER_BIT) -> 7.8e-12 J/bit x 8e12 bit/TB = 62.4 W per TB/s.
#: It enters the package at the die edge beside the stacks and reaches the die sensor through the sink
#: (assumption, stated).
HBM_STACK_W_PER_TBPS = 7.8e-12 * 8e12
#: Default HBM sensor coupling (assumption, stated; calibration replaces them): the stacks share the
#: sink (a_slow = R_slow), pick up a quarter of the die's fast rise by spreading, and their own
#: power heats them at 0.05 K/W (five or six stacks in parallel to the sink).
HBM_CORE_COUPLING, HBM_SELF_K_PER_W = 0.25, 0.05
#: Sensor noise: NVML reports whole °C (quantization σ = 0.29 K) plus sensor noise -> σ = 0.5 K
#: (assumption, stated).
SENSOR_NOISE_C = 0.5
#: Prior spread (assumptions, stated): the total resistance ±30 % of the spec default (one measured
#: value, DESIGN §8, or a stated cold-plate figure), its fast share ±0.2 (the split is not published),
#: HBM couplings ±50 %, offsets ±10 K (a GPU's coolant or inlet reference is often unknown by a few K).
PRIOR_R_TOTAL_REL_SIGMA, PRIOR_FAST_SHARE_SIGMA, PRIOR_REL_SIGMA, PRIOR_OFFSET_SIGMA_C = 0.3, 0.2, 0.5, 10.0
#: Lowest share of the prior total resistance either part may take (resistances are positive;
#: projection bound, assumption).
R_FLOOR_SHARE = 0.05
#: The sink may not be at equilibrium with the first sample: its excess then decays with τ_slow and is
#: a parameter too, prior 0 ± 5 K (assumption, stated).
PRIOR_START_SIGMA_C = 5.0
#: τ_slow candidates as factors of the spec's τ (a factor-of-two prior in log space, assumption).
TAU_FACTORS = (0.5, 0.7, 1.0, 1.4, 2.0)
TAU_PRIOR_LOG_SIGMA = float(np.log(2.0))
#: Huber threshold on the normalized innovation (3 σ: standard robust-statistics choice).
HUBER_K = 3.0
#: Random-walk drift of the parameters (assumption: offsets 0.5 K and resistances 2 % per √hour:
#: dust, pump wear, seasonal coolant changes), so calibration follows slow change.
DRIFT_OFFSET_C_PER_SQRT_H, DRIFT_REL_PER_SQRT_H = 0.5, 0.02


def split_power(
    board_w: np.ndarray, mem_activity: np.ndarray, hbm_peak_TBps: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """(core_w, hbm_w): the HBM stacks' share from memory activity (0..1) x peak bandwidth; the rest to
    the die. Missing activity (NaN) counts as none."""
    board = np.maximum(np.asarray(board_w, dtype=float), 0.0)
    act = np.clip(np.nan_to_num(np.asarray(mem_activity, dtype=float), nan=0.0), 0.0, 1.0)
    hbm = np.minimum(HBM_STACK_W_PER_TBPS * act * np.asarray(hbm_peak_TBps, dtype=float), board)
    return board - hbm, hbm


@dataclass(frozen=True)
class GpuThermal:
    """Per-GPU model parameters (arrays of one length)."""

    r_slow_k_per_w: np.ndarray
    r_fast_k_per_w: np.ndarray
    tau_slow_s: np.ndarray
    tau_fast_s: np.ndarray
    offset_c: np.ndarray
    hbm_offset_c: np.ndarray
    hbm_slow_k_per_w: np.ndarray
    hbm_core_k_per_w: np.ndarray
    hbm_self_k_per_w: np.ndarray

    def take(self, index: np.ndarray) -> GpuThermal:
        return GpuThermal(**{f.name: np.asarray(getattr(self, f.name))[index] for f in fields(self)})

    @property
    def r_total_k_per_w(self) -> np.ndarray:
        return self.r_slow_k_per_w + self.r_fast_k_per_w


def default_thermal(
    r_total_k_per_w: np.ndarray, fast_share: np.ndarray, tau_fast_s: np.ndarray, tau_slow_s: np.ndarray
) -> GpuThermal:
    r = np.asarray(r_total_k_per_w, dtype=float)
    f = np.broadcast_to(np.asarray(fast_share, dtype=float), r.shape)
    r_fast, r_slow = r * f, r * (1.0 - f)
    z = np.zeros_like(r)
    return GpuThermal(
        r_slow_k_per_w=r_slow,
        r_fast_k_per_w=r_fast,
        tau_slow_s=np.broadcast_to(np.asarray(tau_slow_s, float), r.shape).copy(),
        tau_fast_s=np.broadcast_to(np.asarray(tau_fast_s, float), r.shape).copy(),
        offset_c=z,
        hbm_offset_c=z.copy(),
        hbm_slow_k_per_w=r_slow.copy(),
        hbm_core_k_per_w=HBM_CORE_COUPLING * r_fast,
        hbm_self_k_per_w=np.full_like(r, HBM_SELF_K_PER_W),
    )


@dataclass(frozen=True)
class ThermalState:
    """Per-GPU lag states: total power through τ_slow, core and HBM power through τ_fast (W), and the
    coolant temperature through τ_slow (°C)."""

    z_slow: np.ndarray
    z_fast: np.ndarray
    z_hbm: np.ndarray
    coolant_c: np.ndarray


def _lag(prev: np.ndarray, new: np.ndarray, dt: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """First-order lag over dt with the input held; a missing input (NaN) or interval leaves the lag
    where it is, so one bad sample never poisons the state."""
    a = np.exp(-np.maximum(np.nan_to_num(dt, nan=0.0), 0.0) / tau)
    return np.where(np.isfinite(new), a * prev + (1.0 - a) * np.nan_to_num(new), prev)


def steady_state(core_w: np.ndarray, hbm_w: np.ndarray, coolant_c: np.ndarray) -> ThermalState:
    core, hbm = np.asarray(core_w, float), np.asarray(hbm_w, float)
    return ThermalState(
        z_slow=core + hbm, z_fast=core.copy(), z_hbm=hbm.copy(), coolant_c=np.asarray(coolant_c, float).copy()
    )


def step(
    p: GpuThermal,
    s: ThermalState,
    dt_s: np.ndarray | float,
    core_w: np.ndarray,
    hbm_w: np.ndarray,
    coolant_c: np.ndarray,
) -> ThermalState:
    """Advance by dt with the new sample's power held over the interval (NVML and DCGM power are
    averages over the interval that ends at the sample)."""
    dt = np.asarray(dt_s, float)
    return ThermalState(
        z_slow=_lag(s.z_slow, core_w + hbm_w, dt, p.tau_slow_s),
        z_fast=_lag(s.z_fast, core_w, dt, p.tau_fast_s),
        z_hbm=_lag(s.z_hbm, hbm_w, dt, p.tau_fast_s),
        coolant_c=_lag(s.coolant_c, coolant_c, dt, p.tau_slow_s),
    )


def temperatures(p: GpuThermal, s: ThermalState) -> tuple[np.ndarray, np.ndarray]:
    """(GPU die °C, HBM °C)."""
    gpu = s.coolant_c + p.offset_c + p.r_slow_k_per_w * s.z_slow + p.r_fast_k_per_w * s.z_fast
    hbm = (
        s.coolant_c
        + p.hbm_offset_c
        + p.hbm_slow_k_per_w * s.z_slow
        + p.hbm_core_k_per_w * s.z_fast
        + p.hbm_self_k_per_w * s.z_hbm
    )
    return gpu, hbm


def steady_temperatures(
    p: GpuThermal, core_w: np.ndarray, hbm_w: np.ndarray, coolant_c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    return temperatures(p, steady_state(core_w, hbm_w, coolant_c))


# --- online calibration --------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """Per GPU (n) and τ_slow candidate (K): lag states, Kalman means / covariances, scores."""

    prior: GpuThermal
    tau_slow_s: np.ndarray  # (n, K)
    z_slow: np.ndarray  # (n, K)
    coolant_c: np.ndarray  # (n, K)
    z_fast: np.ndarray  # (n,)
    z_hbm: np.ndarray  # (n,)
    start_decay: np.ndarray  # (n, K): exp(-(t - t0)/τ_slow), the regressor of the sink's unknown start
    theta: np.ndarray  # (n, K, 4): offset, R_slow, R_fast, sink excess at the start (K)
    cov: np.ndarray  # (n, K, 4, 4)
    theta_h: np.ndarray  # (n, K, 5): offset_h, a_slow, a_core, a_hbm, start excess
    cov_h: np.ndarray  # (n, K, 5, 5)
    score: np.ndarray  # (n, K): -log predictive likelihood (Huber), + the τ prior
    samples: np.ndarray  # (n,) GPU temperatures used

    @property
    def best(self) -> np.ndarray:
        return np.argmin(self.score, axis=1)


def _diag(n: int, k: int, var: np.ndarray) -> np.ndarray:
    d = var.shape[-1]
    out = np.zeros((n, k, d, d))
    idx = np.arange(d)
    out[:, :, idx, idx] = np.broadcast_to(var[:, None, :], (n, k, d))
    return out


def start_calibration(
    prior: GpuThermal,
    core_w: np.ndarray,
    hbm_w: np.ndarray,
    coolant_c: np.ndarray,
    tau_factors: tuple[float, ...] = TAU_FACTORS,
) -> Calibration:
    """Start from the spec defaults, the lags at equilibrium with the first sample."""
    n, k = len(prior.r_slow_k_per_w), len(tau_factors)
    f = np.asarray(tau_factors, float)
    tot = np.asarray(core_w, float) + np.asarray(hbm_w, float)
    zero = np.zeros(n)
    theta = np.stack([prior.offset_c, prior.r_slow_k_per_w, prior.r_fast_k_per_w, zero], axis=-1)
    theta_h = np.stack(
        [prior.hbm_offset_c, prior.hbm_slow_k_per_w, prior.hbm_core_k_per_w, prior.hbm_self_k_per_w, zero],
        axis=-1,
    )
    # (R_slow, R_fast) = ((1 - f) R, f R) with R and f independent: a tight total, a loose split
    r = prior.r_total_k_per_w
    fs = prior.r_fast_k_per_w / np.where(r > 0, r, 1.0)
    var_r, var_f = (PRIOR_R_TOTAL_REL_SIGMA * r) ** 2, np.full(n, PRIOR_FAST_SHARE_SIGMA**2)
    cov0 = np.zeros((n, 4, 4))
    cov0[:, 0, 0] = PRIOR_OFFSET_SIGMA_C**2
    cov0[:, 3, 3] = PRIOR_START_SIGMA_C**2
    cov0[:, 1, 1] = (1 - fs) ** 2 * var_r + r**2 * var_f
    cov0[:, 2, 2] = fs**2 * var_r + r**2 * var_f
    cov0[:, 1, 2] = cov0[:, 2, 1] = fs * (1 - fs) * var_r - r**2 * var_f
    var_h = np.stack(
        [
            np.full(n, PRIOR_OFFSET_SIGMA_C**2),
            (PRIOR_REL_SIGMA * prior.hbm_slow_k_per_w) ** 2,
            np.maximum(prior.hbm_core_k_per_w, 1e-3) ** 2,
            np.maximum(prior.hbm_self_k_per_w, 1e-3) ** 2,
            np.full(n, PRIOR_START_SIGMA_C**2),
        ],
        axis=-1,
    )
    tau_score = 0.5 * (np.log(f) / TAU_PRIOR_LOG_SIGMA) ** 2
    return Calibration(
        prior=prior,
        tau_slow_s=prior.tau_slow_s[:, None] * f[None, :],
        z_slow=np.repeat(tot[:, None], k, axis=1),
        coolant_c=np.repeat(np.asarray(coolant_c, float)[:, None], k, axis=1),
        z_fast=np.asarray(core_w, float).copy(),
        z_hbm=np.asarray(hbm_w, float).copy(),
        start_decay=np.ones((n, k)),
        theta=np.repeat(theta[:, None, :], k, axis=1),
        cov=np.repeat(cov0[:, None], k, axis=1),
        theta_h=np.repeat(theta_h[:, None, :], k, axis=1),
        cov_h=_diag(n, k, var_h),
        score=np.repeat(tau_score[None, :], n, axis=0),
        samples=np.zeros(n, dtype=np.int64),
    )


def _kalman(
    theta: np.ndarray, cov: np.ndarray, phi: np.ndarray, y: np.ndarray, ok: np.ndarray, drift: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One robust Kalman update of (n, K, d) parameter means with random-walk drift (diagonal, (n, 1, d));
    returns theta, cov and the score term. P- = P + Q; K = P- φ / s; P+ = P- - K (P- φ)ᵀ."""
    d = theta.shape[-1]
    pphi = np.einsum("nkij,nkj->nki", cov, phi) + drift * phi
    s = (phi * pphi).sum(-1) + SENSOR_NOISE_C**2
    e = y - (phi * theta).sum(-1)
    nu = e / np.sqrt(s)
    w = np.minimum(1.0, HUBER_K / np.maximum(np.abs(nu), 1e-12))  # Huber weight
    s_eff = s - SENSOR_NOISE_C**2 + SENSOR_NOISE_C**2 / w
    gain = pphi * (ok[:, None] / s_eff)[..., None]  # no update where the sample is missing
    theta = theta + gain * e[..., None]
    cov = cov - gain[..., :, None] * pphi[..., None, :]
    cov[..., np.arange(d), np.arange(d)] += drift
    a = np.abs(nu)
    rho = np.where(a <= HUBER_K, 0.5 * nu * nu, HUBER_K * a - 0.5 * HUBER_K**2)
    return theta, cov, np.where(ok[:, None], 0.5 * np.log(s) + rho, 0.0)


def calibrate_step(
    cal: Calibration,
    dt_s: np.ndarray | float,
    core_w: np.ndarray,
    hbm_w: np.ndarray,
    coolant_c: np.ndarray,
    gpu_temp_c: np.ndarray,
    hbm_temp_c: np.ndarray | None = None,
) -> Calibration:
    """Advance the lags by dt with this sample's inputs, then learn from its measured temperatures
    (NaN: missing, skipped). A missing input (NaN power or coolant) leaves its lag where it is and
    the sample teaches nothing; callers that know better (the last value) may fill it first."""
    p = cal.prior
    n = len(p.r_slow_k_per_w)
    dt = np.broadcast_to(np.asarray(dt_s, float), (n,))
    core, hbm = np.asarray(core_w, float), np.asarray(hbm_w, float)
    tot = core + hbm
    dt2 = dt[:, None]
    z_slow = _lag(cal.z_slow, tot[:, None], dt2, cal.tau_slow_s)
    cool = _lag(cal.coolant_c, np.asarray(coolant_c, float)[:, None], dt2, cal.tau_slow_s)
    z_fast = _lag(cal.z_fast, core, dt, p.tau_fast_s)
    z_hbm = _lag(cal.z_hbm, hbm, dt, p.tau_fast_s)
    decay = cal.start_decay * np.exp(-np.maximum(dt2, 0.0) / cal.tau_slow_s)
    k = z_slow.shape[1]
    hours = dt / 3600.0
    zero = np.zeros(n)
    rw = (
        np.stack(
            [
                np.full(n, DRIFT_OFFSET_C_PER_SQRT_H**2),
                (DRIFT_REL_PER_SQRT_H * p.r_slow_k_per_w) ** 2,
                (DRIFT_REL_PER_SQRT_H * p.r_fast_k_per_w) ** 2,
                zero,
            ],
            axis=-1,
        )
        * hours[:, None]
    )
    rw_h = np.stack(
        [
            rw[:, 0],
            rw[:, 1],
            rw[:, 2],
            (DRIFT_REL_PER_SQRT_H * np.maximum(p.hbm_self_k_per_w, 1e-3)) ** 2 * hours,
            zero,
        ],
        axis=-1,
    )
    ones = np.ones((n, k))
    zf = np.repeat(z_fast[:, None], k, axis=1)
    phi = np.stack([ones, z_slow, zf, decay], axis=-1)
    y = np.asarray(gpu_temp_c, float)
    ok = np.isfinite(y) & np.isfinite(tot) & np.isfinite(np.asarray(coolant_c, float))
    yk = np.where(ok, y, 0.0)[:, None] - cool
    theta, cov, sc = _kalman(cal.theta, cal.cov, phi, yk, ok, rw[:, None, :])
    theta_h, cov_h = cal.theta_h, cal.cov_h
    if hbm_temp_c is not None:
        yh = np.asarray(hbm_temp_c, float)
        okh = np.isfinite(yh) & np.isfinite(tot) & np.isfinite(np.asarray(coolant_c, float))
        phi_h = np.stack([ones, z_slow, zf, np.repeat(z_hbm[:, None], k, axis=1), decay], axis=-1)
        theta_h, cov_h, _ = _kalman(
            theta_h, cov_h, phi_h, np.where(okh, yh, 0.0)[:, None] - cool, okh, rw_h[:, None, :]
        )
    return Calibration(
        prior=p,
        tau_slow_s=cal.tau_slow_s,
        z_slow=z_slow,
        coolant_c=cool,
        z_fast=z_fast,
        z_hbm=z_hbm,
        start_decay=decay,
        theta=theta,
        cov=cov,
        theta_h=theta_h,
        cov_h=cov_h,
        score=cal.score + sc,
        samples=cal.samples + ok,
    )


def _positive_mode(m: np.ndarray, cov: np.ndarray, idx: tuple[int, ...], floor: np.ndarray) -> np.ndarray:
    """The Gaussian posterior's mode with m[idx] >= floor: each active set of the bounds (fixed at the
    floor, the rest at their conditional mean), the feasible one closest in Mahalanobis distance."""
    n, d = m.shape
    best = np.where(np.all(m[:, list(idx)] >= floor[:, None], axis=1)[:, None], m, np.nan)
    best_dist = np.where(np.isfinite(best[:, 0]), 0.0, np.inf)
    prec = np.linalg.inv(cov)
    subsets = [tuple(j for b, j in enumerate(idx) if mask >> b & 1) for mask in range(1, 1 << len(idx))]
    for fixed in subsets:
        free = [j for j in range(d) if j not in fixed]
        fx = list(fixed)
        cand = m.copy()
        delta = floor[:, None] - m[:, fx]
        # conditional mean of the free part given the fixed part at the floor
        gain = np.einsum("nij,njk->nik", cov[:, free][:, :, fx], np.linalg.inv(cov[:, fx][:, :, fx]))
        cand[:, free] = m[:, free] + np.einsum("nij,nj->ni", gain, delta)
        cand[:, fx] = floor[:, None]
        ok = np.all(cand[:, list(idx)] >= floor[:, None] - 1e-12, axis=1)
        dev = cand - m
        dist = np.einsum("ni,nij,nj->n", dev, prec, dev)
        take = ok & (dist < best_dist)
        best[take] = cand[take]
        best_dist = np.where(take, dist, best_dist)
    return best


def calibrated(cal: Calibration) -> tuple[GpuThermal, ThermalState]:
    """The best candidate per GPU: its parameters (the posterior mode with both resistances at least
    ``R_FLOOR_SHARE`` of the prior total) and its lag state now (the start term folded into the sink)."""
    b = cal.best
    i = np.arange(len(b))
    floor = R_FLOOR_SHARE * cal.prior.r_total_k_per_w
    th = cal.theta[i, b].copy()
    low = (th[:, 1] < floor) | (th[:, 2] < floor)
    if low.any():
        th[low] = _positive_mode(th[low], cal.cov[i[low], b[low]], (1, 2), floor[low])
    thh = cal.theta_h[i, b]
    p = GpuThermal(
        r_slow_k_per_w=th[:, 1],
        r_fast_k_per_w=th[:, 2],
        tau_slow_s=cal.tau_slow_s[i, b],
        tau_fast_s=cal.prior.tau_fast_s.copy(),
        offset_c=th[:, 0],
        hbm_offset_c=thh[:, 0],
        hbm_slow_k_per_w=np.maximum(thh[:, 1], 0.0),
        hbm_core_k_per_w=np.maximum(thh[:, 2], 0.0),
        hbm_self_k_per_w=np.maximum(thh[:, 3], 0.0),
    )
    start = th[:, 3] * cal.start_decay[i, b]  # K still left of the unknown start
    s = ThermalState(
        z_slow=cal.z_slow[i, b] + start / p.r_slow_k_per_w,
        z_fast=cal.z_fast.copy(),
        z_hbm=cal.z_hbm.copy(),
        coolant_c=cal.coolant_c[i, b],
    )
    return p, s


def pooled_prior(p: GpuThermal, group: np.ndarray, calibrated_mask: np.ndarray | None = None) -> GpuThermal:
    """Per group (GPU model × cooling type): the median of its calibrated GPUs' parameters, given to
    every GPU of the group. The prior for a GPU that is new, replaced or reset, so it starts from
    what its siblings taught rather than from the spec's one number. Groups with no calibrated GPU
    keep their own values."""
    g = np.asarray(group)
    mask = np.ones(len(g), bool) if calibrated_mask is None else np.asarray(calibrated_mask, bool)
    out = {f.name: np.array(getattr(p, f.name), float, copy=True) for f in fields(p)}
    for gid in np.unique(g):
        members = g == gid
        src = members & mask
        if not src.any():
            continue
        for name, arr in out.items():
            arr[members] = np.median(np.asarray(getattr(p, name))[src])
    return GpuThermal(**out)


# --- time-to-throttle ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CoolantPath:
    """Coolant (or inlet air) temperature at each GPU over the coming time:
    T_c(t) = final_c + (now_c - final_c)·exp(-t/tau_s) + ramp_k_per_s·t."""

    now_c: np.ndarray
    final_c: np.ndarray
    tau_s: np.ndarray
    ramp_k_per_s: np.ndarray


def temperatures_at(
    p: GpuThermal, s: ThermalState, core_w: np.ndarray, hbm_w: np.ndarray, path: CoolantPath, t_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form (GPU, HBM) temperatures, power held, shape (n, m): at times t of shape (m,) (the same
    for every GPU) or (n, m)."""
    t = np.asarray(t_s, float)
    if t.ndim == 1:
        t = t[None, :]

    def c(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, float)[:, None]

    ts, tf = c(p.tau_slow_s), c(p.tau_fast_s)
    tl = np.maximum(c(path.tau_s), 1e-3)
    tl = np.where(np.abs(tl - ts) < 1e-3 * ts, ts * 1.001, tl)  # the τ_loop = τ_slow limit
    a, b, r = c(path.final_c), c(path.now_c) - c(path.final_c), c(path.ramp_k_per_s)
    kk = b * tl / (tl - ts)
    cc = c(s.coolant_c) - (a - r * ts + kk)
    es, ef = np.exp(-t / ts), np.exp(-t / tf)
    zeta = a + r * (t - ts) + kk * np.exp(-t / tl) + cc * es
    tot, core, hbm = c(np.asarray(core_w) + np.asarray(hbm_w)), c(core_w), c(hbm_w)
    z_slow = tot + (c(s.z_slow) - tot) * es
    z_fast = core + (c(s.z_fast) - core) * ef
    z_hbm = hbm + (c(s.z_hbm) - hbm) * ef
    gpu = zeta + c(p.offset_c) + c(p.r_slow_k_per_w) * z_slow + c(p.r_fast_k_per_w) * z_fast
    hb = (
        zeta
        + c(p.hbm_offset_c)
        + c(p.hbm_slow_k_per_w) * z_slow
        + c(p.hbm_core_k_per_w) * z_fast
        + c(p.hbm_self_k_per_w) * z_hbm
    )
    return gpu, hb


THROTTLE_NONE, THROTTLE_GPU, THROTTLE_HBM = 0, 1, 2
#: bisection steps after the grid: grid cells are < 40 % wide, so 12 halvings leave < 1e-4 relative (0.35 s at
#: an hour, 6 ms at a minute: far below the seconds an alert or a what-if reports)
BISECTIONS = 12


class _Margins:
    """``temperatures_at`` minus the limits for one set of GPUs, at many times: the per-GPU constants are
    computed once (not at each grid or bisection step). The float64 margins use ``temperatures_at``'s own
    operations in its order, so they are the same numbers; ``grid32`` is a float32 screen of the grid whose
    answers are trusted only where they clear the float32 error with a wide margin."""

    def __init__(self, p: GpuThermal, s: ThermalState, core_w, hbm_w, path: CoolantPath, slowdown_c, hbm_max_c):
        def f(x) -> np.ndarray:
            return np.asarray(x, float)

        ts, tf = f(p.tau_slow_s), f(p.tau_fast_s)
        tl = np.maximum(f(path.tau_s), 1e-3)
        tl = np.where(np.abs(tl - ts) < 1e-3 * ts, ts * 1.001, tl)  # the τ_loop = τ_slow limit
        a, b, r = f(path.final_c), f(path.now_c) - f(path.final_c), f(path.ramp_k_per_s)
        kk = b * tl / (tl - ts)
        cc = f(s.coolant_c) - (a - r * ts + kk)
        tot, core, hbm = f(np.asarray(core_w) + np.asarray(hbm_w)), f(core_w), f(hbm_w)
        self.ts, self.tf, self.tl, self.a, self.r, self.kk, self.cc = ts, tf, tl, a, r, kk, cc
        self.tot, self.core, self.hbm = tot, core, hbm
        self.dz_slow, self.dz_fast, self.dz_hbm = f(s.z_slow) - tot, f(s.z_fast) - core, f(s.z_hbm) - hbm
        self.p = p
        self.sl, self.hm = f(slowdown_c), f(hbm_max_c)

    def take(self, rows: np.ndarray) -> _Margins:
        """The same for a subset of the GPUs."""
        out = object.__new__(_Margins)
        for k, v in vars(self).items():
            setattr(out, k, v.take(rows) if k == "p" else v[rows])
        return out

    def at(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(die margin, HBM margin) in K, one time per GPU (shape (n,))."""
        return self._eval(np.asarray(t, float), lambda x: x, self.p)

    def grid(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(die margin, HBM margin), shape (n, m), at the times ``t`` of shape (m,), the same for every GPU."""
        return self._eval(np.asarray(t, float)[None, :], lambda x: np.asarray(x)[:, None], self.p)

    def _eval(self, t, c, p) -> tuple[np.ndarray, np.ndarray]:
        ts, tf = c(self.ts), c(self.tf)
        es, ef = np.exp(-t / ts), np.exp(-t / tf)
        zeta = c(self.a) + c(self.r) * (t - ts) + c(self.kk) * np.exp(-t / c(self.tl)) + c(self.cc) * es
        z_slow = c(self.tot) + c(self.dz_slow) * es
        z_fast = c(self.core) + c(self.dz_fast) * ef
        z_hbm = c(self.hbm) + c(self.dz_hbm) * ef
        gpu = zeta + c(p.offset_c) + c(p.r_slow_k_per_w) * z_slow + c(p.r_fast_k_per_w) * z_fast
        hb = (
            zeta
            + c(p.hbm_offset_c)
            + c(p.hbm_slow_k_per_w) * z_slow
            + c(p.hbm_core_k_per_w) * z_fast
            + c(p.hbm_self_k_per_w) * z_hbm
        )
        return gpu - c(self.sl), hb - c(self.hm)

    def grid32(self, t: np.ndarray, horizon_s: float) -> tuple[np.ndarray, np.ndarray]:
        """The first grid column where a margin is >= 0 (the column count if none), in float32, and which rows
        cannot be trusted: a margin up to that column within ``GRID32_GUARD`` of the row's scale of zero.

        The same closed form with its constant parts summed first (in float64):
        margin = m0 + r·t + kk·e^(-t/τ_loop) + m_s·e^(-t/τ_slow) + m_f·e^(-t/τ_fast). Evaluated in float32
        each of its ~10 operations errs by at most half an ulp (6e-8) of the largest term, and the float64
        original by far less; ``scale`` bounds every term and every partial sum of both forms, so a margin
        farther than GRID32_GUARD·scale from zero has the same sign in both."""
        p = self.p
        f32 = np.float32
        # absurd inputs (fuzzed what-ifs) can overflow float64 here or float32 in the casts: such a row's scale is
        # inf or NaN or beyond float32, and the row goes to the float64 path (doubt), which handles it
        with np.errstate(over="ignore", invalid="ignore"):
            a_r = self.a - self.r * self.ts
            g0 = a_r + p.offset_c + p.r_slow_k_per_w * self.tot + p.r_fast_k_per_w * self.core - self.sl
            h0 = (a_r + p.hbm_offset_c + p.hbm_slow_k_per_w * self.tot + p.hbm_core_k_per_w * self.core
                  + p.hbm_self_k_per_w * self.hbm - self.hm)
            gs = self.cc + p.r_slow_k_per_w * self.dz_slow
            hs = self.cc + p.hbm_slow_k_per_w * self.dz_slow
            gf = p.r_fast_k_per_w * self.dz_fast
            hf = p.hbm_core_k_per_w * self.dz_fast + p.hbm_self_k_per_w * self.dz_hbm
            shared = (np.abs(self.a) + np.abs(self.r) * (self.ts + horizon_s) + 2 * np.abs(self.kk)
                      + 2 * np.abs(self.cc) + np.abs(self.tot) + np.abs(self.core) + np.abs(self.hbm)
                      + np.abs(self.dz_slow) + np.abs(self.dz_fast) + np.abs(self.dz_hbm))
            r_sum = (np.abs(p.r_slow_k_per_w) + np.abs(p.r_fast_k_per_w) + np.abs(p.hbm_slow_k_per_w)
                     + np.abs(p.hbm_core_k_per_w) + np.abs(p.hbm_self_k_per_w) + 1.0)
            scale = (shared * r_sum + np.abs(p.offset_c) + np.abs(p.hbm_offset_c) + np.abs(self.sl) + np.abs(self.hm)
                     + np.abs(g0) + np.abs(h0) + np.abs(gs) + np.abs(hs) + np.abs(gf) + np.abs(hf))
            guard = (GRID32_GUARD * scale).astype(f32)[:, None]
            tt = np.asarray(t, f32)[None, :]
            es, ef, el = (_decay32(tt, tau) for tau in (self.ts, self.tf, self.tl))
            common = self.r.astype(f32)[:, None] * tt
            common += self.kk.astype(f32)[:, None] * el
            mg = common + g0.astype(f32)[:, None]
            mg += gs.astype(f32)[:, None] * es
            mg += gf.astype(f32)[:, None] * ef
            mh = common
            mh += h0.astype(f32)[:, None]
            mh += hs.astype(f32)[:, None] * es
            mh += hf.astype(f32)[:, None] * ef
            hit = (mg >= 0) | (mh >= 0)
            m = hit.shape[1]
            first = np.where(hit.any(axis=1), hit.argmax(axis=1), m)
            near = (np.abs(mg) <= guard) | (np.abs(mh) <= guard)
            near &= np.arange(m)[None, :] <= first[:, None]
            doubt = near.any(axis=1) | ~(scale < np.finfo(f32).max)  # NaN / inf / beyond float32: the float64 path
        return first, doubt


def _decay32(tt: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """e^(-t/τ) in float32 for times ``tt`` (1, m) and time constants ``tau`` (n,): (n, m), or (k, m) rows
    indexed back when only k << n distinct τ (one per GPU model until calibration moves τ_slow, one per loop
    for τ_loop), or (1, m) when all are the same."""
    tau = np.asarray(tau, float)
    if tau.size and (tau == tau[0]).all():
        return np.exp(tt * _rate32(tau[:1])[0])
    u, inv = np.unique(tau, return_inverse=True)
    if 8 * len(u) <= len(tau):
        return np.exp(tt * _rate32(u)[:, None])[inv]
    return np.exp(tt * _rate32(tau)[:, None])


def _rate32(tau: np.ndarray) -> np.ndarray:
    """-1/τ in float32, divided in float64 and held inside float32's range: a τ too small for float32 (> 0, as
    validated) decays at once, e^(0·rate) = 1 and e^(-t·huge) = 0, instead of 0/0 at t = 0."""
    return np.maximum(-1.0 / tau, -np.finfo(np.float32).max).astype(np.float32)


#: the float32 grid screen's trust band, relative to each GPU's scale of its margin's terms: 1e-5 is ~170
#: float32 ulps (2^-24 = 6e-8), far above the ~10 roundings of either form; a margin inside it is recomputed in
#: float64. The ulp is IEEE 754 binary32's, the only source; the band does not move any answer, only how many
#: GPUs take the float64 path.
GRID32_GUARD = 1e-5


def _may_reach_a_limit(
    p: GpuThermal,
    s: ThermalState,
    core_w: np.ndarray,
    hbm_w: np.ndarray,
    path: CoolantPath,
    slowdown_c: np.ndarray,
    hbm_max_c: np.ndarray,
    horizon_s: float,
) -> np.ndarray:
    """Indexes of the GPUs that may reach a limit within the horizon. A lag's output never exceeds the larger
    of its start and its input's bound, so a GPU whose bound stays below both limits skips the grid (most of
    them, on a healthy site)."""
    tot = np.asarray(core_w, float) + np.asarray(hbm_w, float)
    cool_max = (
        np.maximum(np.maximum(path.now_c, path.final_c), s.coolant_c)
        + np.maximum(path.ramp_k_per_s, 0) * horizon_s
    )
    zs, zf, zh = np.maximum(s.z_slow, tot), np.maximum(s.z_fast, core_w), np.maximum(s.z_hbm, hbm_w)
    g_max = cool_max + p.offset_c + p.r_slow_k_per_w * zs + p.r_fast_k_per_w * zf
    h_max = (
        cool_max
        + p.hbm_offset_c
        + p.hbm_slow_k_per_w * zs
        + p.hbm_core_k_per_w * zf
        + p.hbm_self_k_per_w * zh
    )
    return np.flatnonzero(~((g_max < slowdown_c) & (h_max < hbm_max_c)))


def time_to_throttle(
    p: GpuThermal,
    s: ThermalState,
    core_w: np.ndarray,
    hbm_w: np.ndarray,
    path: CoolantPath,
    slowdown_c: np.ndarray,
    hbm_max_c: np.ndarray,
    horizon_s: float = 3600.0,
    grid: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Seconds until the die reaches its slowdown temperature or the HBM its limit (whichever first;
    0 if already there, +inf beyond the horizon), and which (THROTTLE_GPU / THROTTLE_HBM / _NONE).

    The same answers as ``time_to_throttle_direct`` (tested bit for bit on random GPUs), faster: the per-GPU
    constants of the closed form once per call, the grid screened in float32 (rows near a limit redone in
    float64, see ``_Margins.grid32``), the bisection in float64 with the same operations."""
    n = len(np.asarray(slowdown_c))
    times = np.concatenate([[0.0], np.geomspace(0.25, horizon_s, grid)])
    cand = _may_reach_a_limit(p, s, core_w, hbm_w, path, slowdown_c, hbm_max_c, horizon_s)
    out = np.full(n, np.inf)
    which = np.full(n, THROTTLE_NONE)
    if cand.size == 0:
        return out, which
    mm = _Margins(
        p.take(cand),
        ThermalState(*(np.asarray(getattr(s, f.name))[cand] for f in fields(s))),
        np.asarray(core_w)[cand],
        np.asarray(hbm_w)[cand],
        CoolantPath(*(np.asarray(getattr(path, f.name))[cand] for f in fields(path))),
        np.asarray(slowdown_c)[cand],
        np.asarray(hbm_max_c)[cand],
    )
    first, doubt = mm.grid32(times, horizon_s)
    redo = np.flatnonzero(doubt)
    if redo.size:  # near a limit somewhere before its first hit: the float64 grid decides
        mg, mh = mm.take(redo).grid(times)
        hit = (mg >= 0) | (mh >= 0)
        first[redo] = np.where(hit.any(axis=1), hit.argmax(axis=1), len(times))
    now_rows = np.flatnonzero(first == 0)
    if now_rows.size:
        g0, _ = mm.take(now_rows).at(np.zeros(now_rows.size))
        out[cand[now_rows]] = 0.0
        which[cand[now_rows]] = np.where(g0 >= 0, THROTTLE_GPU, THROTTLE_HBM)
    sel = np.flatnonzero((first > 0) & (first < len(times)))
    if sel.size:
        f = first[sel]
        lo, hi = times[f - 1], times[f]
        ms = mm.take(sel)
        for _ in range(BISECTIONS):
            mid = 0.5 * (lo + hi)
            g, h = ms.at(mid)
            up = (g >= 0) | (h >= 0)
            hi = np.where(up, mid, hi)
            lo = np.where(up, lo, mid)
        g, _ = ms.at(hi)
        out[cand[sel]] = hi
        which[cand[sel]] = np.where(g >= 0, THROTTLE_GPU, THROTTLE_HBM)
    return out, which


def time_to_throttle_direct(
    p: GpuThermal,
    s: ThermalState,
    core_w: np.ndarray,
    hbm_w: np.ndarray,
    path: CoolantPath,
    slowdown_c: np.ndarray,
    hbm_max_c: np.ndarray,
    horizon_s: float = 3600.0,
    grid: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """``time_to_throttle`` the straightforward way (every grid and bisection point through
    ``temperatures_at``, all in float64): the reference its faster path is tested and benchmarked against."""
    n = len(np.asarray(slowdown_c))
    times = np.concatenate([[0.0], np.geomspace(0.25, horizon_s, grid)])

    def subset(idx: np.ndarray):
        return (
            p.take(idx),
            ThermalState(*(getattr(s, f.name)[idx] for f in fields(s))),
            CoolantPath(*(np.asarray(getattr(path, f.name))[idx] for f in fields(path))),
            np.asarray(core_w)[idx],
            np.asarray(hbm_w)[idx],
            np.asarray(slowdown_c)[idx][:, None],
            np.asarray(hbm_max_c)[idx][:, None],
        )

    def margin(tt: np.ndarray, sub) -> tuple[np.ndarray, np.ndarray]:
        sp, st, cp, c, h, sl, hm = sub
        g, hb = temperatures_at(sp, st, c, h, cp, tt)
        return g - sl, hb - hm

    cand = _may_reach_a_limit(p, s, core_w, hbm_w, path, slowdown_c, hbm_max_c, horizon_s)
    out = np.full(n, np.inf)
    which = np.full(n, THROTTLE_NONE)
    if cand.size == 0:
        return out, which
    mg, mh = margin(times, subset(cand))
    hit = (mg >= 0) | (mh >= 0)
    anyhit = hit.any(axis=1)
    first = np.where(anyhit, hit.argmax(axis=1), -1)
    now_rows = anyhit & (first == 0)
    now = cand[now_rows]
    out[now] = 0.0
    which[now] = np.where(mg[now_rows, 0] >= 0, THROTTLE_GPU, THROTTLE_HBM)
    sel = anyhit & (first > 0)
    ref = cand[sel]
    first = first[sel]
    if ref.size:
        lo, hi = times[first - 1], times[first]
        sub = subset(ref)
        for _ in range(BISECTIONS):
            mid = 0.5 * (lo + hi)
            g, h = margin(mid[:, None], sub)
            up = (g[:, 0] >= 0) | (h[:, 0] >= 0)
            hi = np.where(up, mid, hi)
            lo = np.where(up, lo, mid)
        g, h = margin(hi[:, None], sub)
        out[ref] = hi
        which[ref] = np.where(g[:, 0] >= 0, THROTTLE_GPU, THROTTLE_HBM)
    return out, which
