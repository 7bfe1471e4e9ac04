"""Curtailment planner: the grid asks the site to import at most ``limit_w`` from ``deadline_s`` on,
for ``duration_s``. A pure function of the current state; the twin advises, it never acts.

Order of measures, cheapest in useful work first:

1. **Batteries** discharge at once, each at most its power and at most its energy spread over the
   event (energy / duration).
2. **Gensets** start now (or late enough to reach their share by the deadline), deliver nothing
   before their start delay, then ramp at their ramp rate up to their rating.
3. **GPU power caps**, lowest job priority first (GPUs without a job first of all): a tier's caps
   are lowered just enough (bisection) and never below each GPU's minimum cap; the GPU model turns a
   cap into the lower SM clock and the throughput it costs.
4. **Checkpoint and pause jobs** where caps at the minimum are not enough, chosen greedily by least
   useful work lost per watt saved: priority x GPUs x event duration, plus the work since the last
   checkpoint when there is no time to write a checkpoint before the deadline.

The plan states the predicted site import over time, whether and when it meets the limit (or the
shortfall), and the throughput it costs. Site power for a set of GPU powers comes from the caller
(``site_power(gpu_w, idle_nodes)``: GPU watts and a mask of nodes whose jobs are paused -> site
watts, the chain of twin.power.domain.network; see twin.power.domain.tick.site_power_function).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .gpu import GpuPowerParams, gpu_power

#: a new power limit takes effect within about a second (NVML nvmlDeviceSetPowerManagementLimit is
#: enforced by the on-board power controller at millisecond scale; 1 s allows for the tooling).
CAP_LEAD_S = 1.0
#: points on the predicted timeline
TIMELINE_POINTS = 121
#: a tier's caps are searched until site import is within this share below the target (or the
#: iteration limit; the answer is always on the feasible side)
TARGET_TOLERANCE = 1e-4
MAX_CAP_ITERATIONS = 12


@dataclass(frozen=True)
class Sources:
    battery_ids: tuple[str, ...]
    battery_power_w: np.ndarray
    battery_energy_j: np.ndarray     # energy available now
    genset_ids: tuple[str, ...]
    genset_power_w: np.ndarray
    genset_start_delay_s: np.ndarray
    genset_ramp_w_per_s: np.ndarray


@dataclass(frozen=True)
class GpuLoad:
    """What every GPU is doing now (one entry per GPU)."""

    params: GpuPowerParams
    tensor_active: np.ndarray
    sm_active: np.ndarray
    dram_active: np.ndarray
    power_limit_w: np.ndarray
    job: np.ndarray                  # job index per GPU, -1 = none
    gpu_node: np.ndarray | None = None  # node per GPU: nodes whose GPUs are all paused idle their CPUs too


@dataclass(frozen=True)
class Jobs:
    job_ids: tuple[str, ...]
    priority: np.ndarray             # higher = more important (>= 0)
    seconds_since_checkpoint: np.ndarray
    checkpoint_s: np.ndarray         # time to write a checkpoint


@dataclass(frozen=True)
class CurtailmentPlan:
    limit_w: float
    deadline_s: float
    duration_s: float
    baseline_site_w: float
    gpu_cap_w: np.ndarray            # per GPU; NaN = unchanged
    battery_w: np.ndarray            # discharge per battery during the event
    genset_w: np.ndarray             # target output per genset
    genset_start_s: np.ndarray       # when each genset is started (NaN = not used)
    paused_jobs: tuple[str, ...]
    lost_work_gpu_s: float           # work since the last checkpoint thrown away (no time to checkpoint)
    throughput_cost: float           # share of the site's busy-GPU throughput lost during the event
    times_s: np.ndarray
    site_import_w: np.ndarray        # predicted import from the grid at times_s
    meets_limit: bool
    meets_at_s: float | None         # first time from which import stays <= limit (None: never)
    shortfall_w: float               # max import above the limit from the deadline on (0 if met)
    steps: tuple[str, ...]


def _capped(load: GpuLoad, cap_w: np.ndarray, paused: np.ndarray):
    limit = np.where(np.isnan(cap_w), load.power_limit_w, np.minimum(cap_w, load.power_limit_w))
    zero = np.zeros_like(load.tensor_active)
    ta = np.where(paused, zero, load.tensor_active)
    sa = np.where(paused, zero, load.sm_active)
    da = np.where(paused, zero, load.dram_active)
    return gpu_power(load.params, tensor_active=ta, sm_active=sa, dram_active=da, power_limit_w=limit)


def plan_curtailment(*, limit_w: float, deadline_s: float, duration_s: float, load: GpuLoad, jobs: Jobs,
                     sources: Sources, site_power: Callable[..., float]) -> CurtailmentPlan:
    if not (np.isfinite(limit_w) and limit_w >= 0):
        raise ValueError("limit_w must be a finite, non-negative number")
    if not (np.isfinite(deadline_s) and deadline_s >= 0 and np.isfinite(duration_s) and duration_s > 0):
        raise ValueError("deadline_s must be >= 0 and duration_s > 0")
    n = len(load.job)
    nan_caps = np.full(n, np.nan)
    no_pause = np.zeros(n, dtype=bool)
    if load.gpu_node is not None:
        gpus_per_node = np.bincount(load.gpu_node)

    def site_at(gpu_w: np.ndarray, paused: np.ndarray) -> float:
        if load.gpu_node is None:
            return site_power(gpu_w)
        idle_nodes = np.bincount(load.gpu_node, weights=paused, minlength=len(gpus_per_node)) >= gpus_per_node
        return site_power(gpu_w, idle_nodes)

    base = _capped(load, nan_caps, no_pause)
    base_site = site_at(base.power_w, no_pause)
    steps: list[str] = [f"site import now {base_site / 1e6:.3f} MW, limit {limit_w / 1e6:.3f} MW "
                        f"from t={deadline_s:g} s for {duration_s:g} s"]
    need = base_site - limit_w
    # 1. batteries
    bat_avail = np.minimum(sources.battery_power_w, sources.battery_energy_j / duration_s)
    bat = np.zeros_like(bat_avail)
    left = max(need, 0.0)
    for i in np.argsort(-bat_avail):
        bat[i] = min(bat_avail[i], left)
        left -= bat[i]
    if bat.sum() > 0:
        steps.append(f"batteries discharge {bat.sum() / 1e6:.3f} MW")
    # 2. gensets: what each can deliver at the deadline if started now
    g_at_deadline = np.minimum(sources.genset_power_w,
                               sources.genset_ramp_w_per_s * np.maximum(deadline_s - sources.genset_start_delay_s, 0.0))
    gen = np.zeros_like(g_at_deadline)
    g_start = np.full(len(gen), np.nan)
    for i in np.argsort(-g_at_deadline):
        if left <= 0:
            break
        # target what covers the rest, up to the rating; after the deadline it keeps ramping
        gen[i] = min(sources.genset_power_w[i], left)
        reach_s = sources.genset_start_delay_s[i] + gen[i] / sources.genset_ramp_w_per_s[i]
        g_start[i] = max(0.0, deadline_s - reach_s)
        left -= min(gen[i], g_at_deadline[i])
    if np.nansum(gen) > 0:
        steps.append(f"gensets to {gen.sum() / 1e6:.3f} MW ({min(g_at_deadline.sum(), gen.sum()) / 1e6:.3f} MW "
                     "by the deadline)")
    target_w = limit_w + bat.sum() + float(np.minimum(gen, g_at_deadline).sum())

    # 3. caps by priority tier, 4. pauses
    prio = np.where(load.job >= 0, jobs.priority[np.maximum(load.job, 0)] if len(jobs.priority) else 0.0, -1.0)
    tiers = np.unique(prio)

    def site_with(caps: np.ndarray, paused: np.ndarray) -> float:
        return site_at(_capped(load, caps, paused).power_w, paused)

    def cap_search(paused: np.ndarray) -> tuple[np.ndarray, bool]:
        caps = nan_caps.copy()
        s_prev = site_with(caps, paused)
        if s_prev <= target_w:
            return caps, True
        for t in tiers:
            sel = (prio == t) & ~paused
            trial = caps.copy()
            lo_w = load.params.min_cap_w[sel]
            trial[sel] = lo_w
            s_min = site_with(trial, paused)
            if s_min > target_w:
                caps, s_prev = trial, s_min
                continue
            # this tier's caps = min + f (limit - min): site power falls as f falls. Illinois
            # regula falsi on f in [0, 1] (site at f=0 fits, at f=1 it does not), keeping the
            # feasible side: a handful of site evaluations instead of a bisection's twenty
            hi_w = np.maximum(load.power_limit_w[sel], lo_w)
            lo_f, hi_f, g_lo, g_hi = 0.0, 1.0, s_min - target_w, s_prev - target_w
            side = 0
            tol = max(TARGET_TOLERANCE * target_w, 1.0)
            for _ in range(MAX_CAP_ITERATIONS):
                f = lo_f - g_lo * (hi_f - lo_f) / (g_hi - g_lo)
                f = min(max(f, lo_f + 1e-9), hi_f - 1e-9)
                trial[sel] = lo_w + f * (hi_w - lo_w)
                g = site_with(trial, paused) - target_w
                if g <= 0:
                    lo_f, g_lo = f, g
                    if side == -1:
                        g_hi /= 2
                    side = -1
                    if -g <= tol:
                        break
                else:
                    hi_f, g_hi = f, g
                    if side == 1:
                        g_lo /= 2
                    side = 1
            trial[sel] = lo_w + lo_f * (hi_w - lo_w)
            return trial, True
        return caps, False

    paused = no_pause.copy()
    paused_jobs: list[int] = []
    lost_work = 0.0
    caps = nan_caps
    if base_site > target_w:
        caps, ok = cap_search(paused)
        if not ok:
            floor = load.params.min_cap_w
            at_floor = _capped(load, floor, no_pause).power_w
            all_paused = load.job >= 0
            idle = _capped(load, floor, all_paused).power_w
            n_jobs = len(jobs.job_ids)
            busy = np.bincount(load.job[all_paused], minlength=n_jobs)
            saved = np.bincount(load.job[all_paused], weights=(at_floor - idle)[all_paused], minlength=n_jobs)
            can_ckpt = jobs.checkpoint_s <= deadline_s
            lost = np.where(can_ckpt, 0.0, jobs.seconds_since_checkpoint)
            cost = (1.0 + jobs.priority) * busy * (duration_s + lost)
            order = sorted(np.flatnonzero(busy), key=lambda j: (cost[j] / max(saved[j], 1e-9), j))
            # site watts per GPU watt saved by pausing (linear between the two extremes, CPUs included),
            # then verified exactly and extended one job at a time if the estimate fell short
            s_floor = site_with(floor, no_pause)
            s_all = site_with(floor, all_paused)
            factor = (s_floor - s_all) / max(float(saved[order].sum()), 1e-9)
            est = s_floor - factor * np.cumsum(saved[order])
            k = int(np.searchsorted(-est, -target_w)) + 1 if len(order) else 0
            k = min(max(k, 1), len(order))
            while True:
                paused = np.isin(load.job, order[:k])
                if k >= len(order) or site_with(floor, paused) <= target_w:
                    break
                k += 1
            paused_jobs = [int(j) for j in order[:k]]
            lost_work = float(sum(busy[j] * lost[j] for j in paused_jobs))
            caps, _ = cap_search(paused)
            steps.append(f"checkpoint and pause {len(paused_jobs)} job(s): "
                         + ", ".join(jobs.job_ids[j] for j in paused_jobs))
        n_capped = int((~np.isnan(caps)).sum())
        if n_capped:
            steps.append(f"cap {n_capped} GPUs (lowest cap {np.nanmin(caps):.0f} W)")
    after = _capped(load, caps, paused)
    after_site = site_at(after.power_w, paused)

    # timeline
    end = deadline_s + duration_s
    times = np.unique(np.r_[np.linspace(0.0, end, TIMELINE_POINTS), deadline_s, max(deadline_s - CAP_LEAD_S, 0.0)])
    cap_from = max(deadline_s - CAP_LEAD_S, 0.0)
    site_t = np.full(len(times), base_site)
    # caps act CAP_LEAD_S before the deadline; paused jobs write their checkpoint in the run-up and
    # stop at the deadline (or are stopped there without one when there is no time)
    site_t[times >= cap_from] = site_with(caps, no_pause) if paused_jobs else after_site
    site_t[times >= deadline_s] = after_site
    bat_t = np.where((times >= deadline_s) & (times <= end), bat.sum(), 0.0)
    gen_t = np.zeros(len(times))
    for i in np.flatnonzero(gen > 0):
        on = np.maximum(times - g_start[i] - sources.genset_start_delay_s[i], 0.0)
        gen_t += np.minimum(gen[i], sources.genset_ramp_w_per_s[i] * on)
    imp = site_t - bat_t - gen_t
    tol = 1e-6 * max(limit_w, 1.0)
    window = times >= deadline_s
    excess = imp[window] - limit_w
    shortfall = float(max(excess.max(), 0.0)) if excess.size else 0.0
    meets = shortfall <= tol
    above = np.flatnonzero(imp > limit_w + tol)
    if not above.size:
        meets_at: float | None = 0.0
    elif above[-1] + 1 < len(times):
        meets_at = float(times[above[-1] + 1])
    else:
        meets_at = None
    if not meets:
        steps.append(f"cannot meet the limit: short by {shortfall / 1e6:.3f} MW")
    busy_gpu = (load.tensor_active > 0) | (load.sm_active > 0) | (load.dram_active > 0)
    lost_tput = np.where(paused, 1.0, 1.0 - after.throughput_fraction / np.maximum(base.throughput_fraction, 1e-12))
    cost = float(lost_tput[busy_gpu].mean()) if busy_gpu.any() else 0.0
    return CurtailmentPlan(
        limit_w=limit_w, deadline_s=deadline_s, duration_s=duration_s, baseline_site_w=base_site, gpu_cap_w=caps,
        battery_w=bat, genset_w=gen, genset_start_s=g_start,
        paused_jobs=tuple(jobs.job_ids[j] for j in paused_jobs), lost_work_gpu_s=float(lost_work),
        throughput_cost=cost, times_s=times, site_import_w=imp, meets_limit=bool(meets), meets_at_s=meets_at,
        shortfall_w=shortfall, steps=tuple(steps))
