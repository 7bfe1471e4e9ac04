"""GPU board power from activity, clocks and the power limit (DESIGN §8 "GPU and node power").

The twin's own model, written from CMOS physics and published facts (it does not use the facility
simulator's power function). Per GPU, with x = f_SM / f_max:

    P(x) = P_idle_min + (P_idle_max - P_idle_min) x³             clock tree / leakage at idle clocks
         + x³ (W_tensor a_tensor + W_sm max(a_sm - a_tensor, 0))   switching power ∝ f V², V ∝ f
         + E_hbm · B_hbm                                           HBM traffic (independent of SM clock)

a_tensor, a_sm are the DCGM pipe activities (DCGM_FI_PROF_PIPE_TENSOR_ACTIVE, _SM_ACTIVE: the share
of cycles the pipe is busy, a property of the kernel mix, not of the clock); B_hbm is the HBM traffic
(DCGM_FI_PROF_DRAM_ACTIVE x peak bandwidth). "Utilization" (NVML util_gpu) is not an input: a copy
kernel reads ~100 % and draws about half of a dense matmul.

Power limit: the GPU runs at the requested clock (application / locked clock, default f_max) unless
P exceeds the limit; then it lowers the SM clock until P = limit (closed form: P is A + B x³), never
below f_min. The predicted clock is reported; compute-bound throughput scales with the clock,
memory-bound throughput does not (``throughput_fraction``).

Default constants (``default_params``, used where the facility spec does not give them):

* idle at min / max clock: spec ``idle_min_clock_w`` / ``idle_max_clock_w`` (H100: 60 / 120 W,
  DESIGN §8 "idle roughly 60-120 W depending on clocks"), else the spec's ``idle_w``.
* W_tensor from one published operating point: the maximum achievable BF16 matmul throughput of
  an H100 SXM at its default (700 W) limit is 792.1 TFLOP/s, 80.1 % of the 989 TFLOP/s datasheet
  peak (stas00/ml-engineering, compute/accelerator/README.md, "Maximum Achievable Matmul FLOPS
  comparison table", CUDA 12.1). The best shape keeps the tensor pipes busy, so the shortfall is
  the clock the power limit allows: x0 = 792.1 / (132 x 4,096 FLOP/clk x 1,980 MHz) = 0.74 at full
  tensor activity, and W_tensor = (TDP - P_idle(x0)) / x0³ (H100: ~1,520 W). Other GPUs use the
  same 80.1 % of their datasheet peak. (deepseek-ai/DeepGEMM#120 reports the same effect: GEMMs at
  the limit "from 1980MHz to 1575 MHz".)
* W_sm = ``SM_ISSUE_FRACTION`` x W_tensor: non-tensor SM issue / load-store power (assumption, stated;
  a streaming kernel issues one 16-byte access per ~5 issue slots at 3 TB/s on 132 SMs).
* E_hbm = ``HBM_PJ_PER_BIT``: HBM DRAM access + I/O ~3.9 pJ/bit (O'Connor et al., "Fine-Grained
  DRAM", MICRO 2017, HBM2), doubled for the GPU-side path (PHY, memory controller, L2, crossbar:
  assumption, comparable wire lengths on an ~800 mm² die) -> 7.8 pJ/bit = 62.4 W per TB/s.
* Tensor peak per clock: spec ``sms`` x ``tensor_flops_per_clock_per_sm`` (H100: 132 x 4,096, the
  whitepaper's 989.4 TFLOPS at 1,830 MHz), else the spec's dense TFLOPS at its max clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

#: max achievable matmul / datasheet peak at the default power limit, H100 SXM: 792.1 / 989
#: (stas00/ml-engineering MAMF table); read as the clock share the limit leaves at full tensor activity
DENSE_AT_TDP_PEAK_FRACTION = 792.1 / 989.0
#: non-tensor SM power per unit of (sm_active - tensor_active), as a share of W_tensor (assumption).
SM_ISSUE_FRACTION = 0.05
#: HBM energy: 3.9 pJ/bit DRAM side (O'Connor et al., MICRO 2017) x 2 for the GPU-side path.
HBM_PJ_PER_BIT = 7.8
#: min SM clock when the spec gives none: the lowest H100 SXM supported graphics clock (345 MHz) as
#: a share of its 1,980 MHz max.
MIN_CLOCK_FRACTION = 345.0 / 1980.0


@dataclass(frozen=True)
class GpuPowerParams:
    """Per-GPU model constants, all arrays of one length (one entry per GPU, or broadcastable)."""

    idle_min_w: np.ndarray
    idle_max_w: np.ndarray
    tensor_w: np.ndarray            # W_tensor: dynamic power at tensor_active = 1, max clock
    sm_w: np.ndarray                # W_sm: dynamic power per unit of non-tensor SM activity, max clock
    hbm_w_per_TBps: np.ndarray
    hbm_peak_TBps: np.ndarray
    max_clock_mhz: np.ndarray
    min_clock_mhz: np.ndarray
    tflops_per_mhz: np.ndarray      # dense tensor peak per MHz of SM clock (TFLOP/s / MHz)
    default_limit_w: np.ndarray     # board power limit (TDP)
    min_cap_w: np.ndarray           # lowest settable power limit

    def take(self, index: np.ndarray) -> GpuPowerParams:
        return GpuPowerParams(**{k: np.asarray(v)[index] for k, v in self.__dict__.items()})


def default_params(*, max_w: float, idle_w: float, min_cap_w: float, max_clock_mhz: float, hbm_peak_TBps: float,
                   dense_tflops: float, idle_min_clock_w: float | None = None, idle_max_clock_w: float | None = None,
                   min_clock_mhz: float | None = None, sms: int | None = None,
                   tensor_flops_per_clock_per_sm: float | None = None) -> GpuPowerParams:
    """Constants for one GPU model from its published facts (see the module docstring for sources)."""
    lo = idle_min_clock_w if idle_min_clock_w is not None else idle_w
    hi = idle_max_clock_w if idle_max_clock_w is not None else idle_w
    if sms and tensor_flops_per_clock_per_sm:
        per_mhz = sms * tensor_flops_per_clock_per_sm * 1e6 / 1e12
    else:
        per_mhz = dense_tflops / max_clock_mhz
    x0 = min(DENSE_AT_TDP_PEAK_FRACTION * dense_tflops / (per_mhz * max_clock_mhz), 1.0)
    tensor_w = (max_w - lo - (hi - lo) * x0**3) / x0**3
    a = np.asarray
    return GpuPowerParams(
        idle_min_w=a([lo]), idle_max_w=a([hi]), tensor_w=a([tensor_w]), sm_w=a([SM_ISSUE_FRACTION * tensor_w]),
        hbm_w_per_TBps=a([HBM_PJ_PER_BIT * 8.0]), hbm_peak_TBps=a([hbm_peak_TBps]),
        max_clock_mhz=a([max_clock_mhz]),
        min_clock_mhz=a([min_clock_mhz if min_clock_mhz is not None else MIN_CLOCK_FRACTION * max_clock_mhz]),
        tflops_per_mhz=a([per_mhz]), default_limit_w=a([max_w]), min_cap_w=a([min_cap_w]))


@dataclass(frozen=True)
class GpuPower:
    power_w: np.ndarray
    sm_clock_mhz: np.ndarray        # predicted SM clock
    throughput_fraction: np.ndarray  # of the work the GPU would do at the requested clock (0..1)
    power_capped: np.ndarray        # bool: the limit lowered the clock
    tensor_tflops: np.ndarray       # achieved dense tensor throughput at the predicted clock


def _terms(p: GpuPowerParams, tensor_active: np.ndarray, sm_active: np.ndarray, dram_active: np.ndarray):
    # missing activity (NaN) counts as none: the caller fills gaps it knows better (last sample, job profile).
    # np.fmax(a, 0) maps NaN to 0 (and clamps below) in one pass; np.minimum(..., 1) clamps above.
    a_t = _unit(tensor_active)
    a_sm = np.minimum(np.fmax(np.fmax(sm_active, 0.0) - a_t, 0.0), 1.0)
    a_mem = _unit(dram_active)
    hbm_w = p.hbm_w_per_TBps * a_mem * p.hbm_peak_TBps
    const = p.idle_min_w + hbm_w                                        # A
    cubic = (p.idle_max_w - p.idle_min_w) + p.tensor_w * a_t + p.sm_w * a_sm  # B, x P = A + B x³
    return a_t, a_sm, a_mem, const, cubic


def _unit(a: np.ndarray) -> np.ndarray:
    """Clamp to 0..1 with NaN as 0."""
    return np.minimum(np.fmax(a, 0.0), 1.0)


def gpu_power(params: GpuPowerParams, *, tensor_active: np.ndarray, sm_active: np.ndarray,
              dram_active: np.ndarray, power_limit_w: np.ndarray | None = None,
              requested_clock_mhz: np.ndarray | None = None) -> GpuPower:
    """Board power, SM clock and throughput of every GPU (arrays broadcast together)."""
    p = params
    a_t, a_sm, mem, const, cubic = _terms(p, np.asarray(tensor_active, float), np.asarray(sm_active, float),
                                          np.asarray(dram_active, float))
    limit = p.default_limit_w if power_limit_w is None else np.asarray(power_limit_w, float)
    limit = np.maximum(limit, p.min_cap_w)  # the driver refuses limits below the minimum cap
    f_req = p.max_clock_mhz if requested_clock_mhz is None else np.clip(
        np.asarray(requested_clock_mhz, float), p.min_clock_mhz, p.max_clock_mhz)
    x_req = f_req / p.max_clock_mhz
    x_min = p.min_clock_mhz / p.max_clock_mhz
    p_req = const + cubic * (x_req * x_req * x_req)
    capped = p_req > limit
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cap = np.cbrt(np.maximum(limit - const, 0.0) / cubic)
    x = np.where(capped, np.minimum(np.maximum(x_cap, x_min), x_req), x_req)
    power = np.minimum(const + cubic * (x * x * x), limit)
    compute = a_t + a_sm
    with np.errstate(divide="ignore", invalid="ignore"):
        w_compute = np.where(compute + mem > 0, compute / (compute + mem), 0.0)
    tput = 1.0 - w_compute * (1.0 - x / x_req)
    x, power, capped, tput = np.broadcast_arrays(x, power, capped, tput)
    return GpuPower(power_w=power, sm_clock_mhz=x * p.max_clock_mhz, throughput_fraction=tput,
                    power_capped=capped, tensor_tflops=a_t * p.tflops_per_mhz * x * p.max_clock_mhz)


def gpu_power_for_work(params: GpuPowerParams, *, tensor_tflops: np.ndarray, hbm_TBps: np.ndarray,
                       busy_fraction: np.ndarray, power_limit_w: np.ndarray | None = None,
                       requested_clock_mhz: np.ndarray | None = None, iterations: int = 48) -> GpuPower:
    """Power and clock for a phase described by the work it achieved (tensor TFLOP/s, HBM TB/s) and
    the share of time a kernel ran (NVML utilization), as in the validation CSV. Tensor activity is
    the achieved TFLOP/s over the peak at the clock, so P(x) = A + B(x) x³ rises with x; the GPU runs
    at the highest clock <= the requested one whose power fits the limit (bisection, vectorized)."""
    p = params
    tf = np.maximum(np.asarray(tensor_tflops, float), 0.0)
    dram = np.clip(np.asarray(hbm_TBps, float) / p.hbm_peak_TBps, 0.0, 1.0)
    busy = np.clip(np.asarray(busy_fraction, float), 0.0, 1.0)
    limit = np.maximum(p.default_limit_w if power_limit_w is None else np.asarray(power_limit_w, float), p.min_cap_w)
    f_req = p.max_clock_mhz if requested_clock_mhz is None else np.asarray(requested_clock_mhz, float)
    x_req = np.broadcast_to(f_req / p.max_clock_mhz, np.broadcast(tf, dram, busy, limit).shape).astype(float)
    # the lowest clock that can deliver the work at full tensor activity
    x_lo = np.maximum(p.min_clock_mhz / p.max_clock_mhz, np.minimum(tf / (p.tflops_per_mhz * p.max_clock_mhz), x_req))

    def power_at(x: np.ndarray) -> np.ndarray:
        a_t = np.minimum(tf / (p.tflops_per_mhz * p.max_clock_mhz * x), 1.0)
        _, _, _, const, cubic = _terms(p, a_t, np.maximum(busy, a_t), dram)
        return const + cubic * x**3

    fits = power_at(x_req) <= limit
    lo, hi = x_lo.copy(), x_req.copy()
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        ok = power_at(mid) <= limit
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    x = np.where(fits, x_req, lo)
    a_t = np.minimum(tf / (p.tflops_per_mhz * p.max_clock_mhz * x), 1.0)
    at_x = gpu_power(p, tensor_active=a_t, sm_active=np.maximum(busy, a_t), dram_active=dram,
                     power_limit_w=limit, requested_clock_mhz=x * p.max_clock_mhz)
    # relative to the requested clock: the work rate is fixed, so a lower clock costs the compute share
    x_final = at_x.sm_clock_mhz / p.max_clock_mhz
    compute = np.maximum(busy, a_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        w_compute = np.where(compute + dram > 0, compute / (compute + dram), 0.0)
    return replace(at_x, power_capped=at_x.power_capped | ~fits,
                   throughput_fraction=1.0 - w_compute * (1.0 - x_final / x_req))
