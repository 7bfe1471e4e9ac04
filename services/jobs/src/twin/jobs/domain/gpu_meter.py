"""What the job twin reads of GPU telemetry (pure numpy): measured energy, XID / ECC errors, stragglers.

``GpuMeter`` keeps, per GPU of the site, the latest DCGM board power (DCGM_FI_DEV_POWER_USAGE), SM activity
(DCGM_FI_PROF_SM_ACTIVE), last XID code (DCGM_FI_DEV_XID_ERRORS) and volatile double-bit ECC count
(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL). ``update`` takes one batch (global GPU ids, NaN = not reported) and returns
each sample's energy since the GPU's previous sample (trapezoid of the two powers over the gap; a gap longer
than ``MAX_GAP_S`` or a GPU never seen before adds nothing) and which GPUs' error state changed. The caller
passes only GPUs of running jobs (the rest cost nothing).

``stragglers`` aggregates a job's GPUs per node and names the node the others wait for at every collective, by
the signatures synchronous training gives a slow node (every node runs the same kernels per step):
- **idle**: its GPUs wait for something outside them (host, input pipeline, a slow NIC) while the peers wait
  inside NCCL kernels. Seen two ways: its GPU utilization (DCGM_FI_DEV_GPU_UTIL, NVML's "percent of time over
  the past sample period during which one or more kernels was executing on the GPU", nvmlUtilization_t) lags
  the job's median node by more than ``STRAGGLER_MARGIN`` -- the peers' waits are kernels (NCCL's spin in the
  collective), its own are not, so a slowdown s shows as utilization ~1/s of the peers' (1.5x: 67 %) while
  power barely differs (the spinning peers draw power too); or, where utilization is not reported, its power
  AND SM activity both lag by more than the margin (issue 11: "one node whose power and activity lag the
  others"), which the waiting peers' power hides until a ~3x slowdown;
- **clock**: its power lags by more than ``STRAGGLER_MARGIN`` while its activity is at or above the median: it
  runs the same kernels at a lower clock (a power cap or power brake, thermal slowdown), so it is busy longer
  at less power while its peers wait. A node that is merely idle more (lower activity) at lower power is the
  first kind; lower power at equal activity cannot be a faster node.
It compares time averages (``AVERAGE_S``), never the
latest samples: racks are read at different instants, a training step swings between compute and
communication within seconds, and pipeline stages are in different phases at the same instant, so one node's
latest sample can be a communication phase while its peers' are compute (a false straggler on a healthy job).
Over many steps every node of a balanced job does the same work, so the averages agree unless one lags.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: A GPU's energy integrates across gaps up to this between two samples; a longer gap (telemetry lost) adds
#: nothing rather than guess (assumption, stated: DCGM exporters are scraped every 1-30 s; 60 s is two missed
#: scrapes of the slowest).
MAX_GAP_S = 60.0
#: A node straggles when its mean GPU power and SM activity are both this far below the job's median node
#: (assumption, stated: in data-parallel training all nodes run the same kernels, so a healthy node sits within
#: a few percent of the others; 20 % is well outside that spread).
STRAGGLER_MARGIN = 0.2
#: Samples older than this do not count for the straggler check (assumption, stated: as ``MAX_GAP_S``).
FRESH_S = MAX_GAP_S
#: Time constant of the per-GPU averages the straggler check compares, and the history a GPU needs before it is
#: judged (assumption, stated: ten steps of the longest common step times, 1-12 s; the residual ripple of a
#: periodic compute/communication swing of period T is about T / (2 pi AVERAGE_S) of the swing, < 2 % here).
AVERAGE_S = 120.0
#: An error seen this recently flags the job (assumption, stated: long enough for the slowed steps it causes to
#: be reported; a job restarted on other GPUs leaves it behind with the placement).
ERROR_RECENT_S = 600.0


@dataclass
class GpuMeter:
    power_w: np.ndarray
    sm_active: np.ndarray
    time_s: np.ndarray
    power_avg_w: np.ndarray  # exponential time averages (time constant AVERAGE_S) of the two above
    sm_active_avg: np.ndarray
    averaged_s: np.ndarray  # seconds of contiguous history behind the averages (0: restarted)
    util_avg: np.ndarray  # time average of GPU utilization (0..1; NaN: not reported)
    util_averaged_s: np.ndarray  # its history (utilization may come and go apart from power)
    xid: np.ndarray  # last non-zero XID code seen (0: none)
    xid_time_s: np.ndarray
    dbe: np.ndarray  # last volatile DBE total (NaN: never reported)
    dbe_time_s: np.ndarray  # when it last grew

    @classmethod
    def of(cls, n_gpus: int) -> GpuMeter:
        return cls(
            power_w=np.full(n_gpus, np.nan),
            sm_active=np.full(n_gpus, np.nan),
            time_s=np.full(n_gpus, -np.inf),
            power_avg_w=np.full(n_gpus, np.nan),
            sm_active_avg=np.full(n_gpus, np.nan),
            averaged_s=np.zeros(n_gpus),
            util_avg=np.full(n_gpus, np.nan),
            util_averaged_s=np.zeros(n_gpus),
            xid=np.zeros(n_gpus, np.int64),
            xid_time_s=np.full(n_gpus, -np.inf),
            dbe=np.full(n_gpus, np.nan),
            dbe_time_s=np.full(n_gpus, -np.inf),
        )

    def update(
        self,
        time_s: float,
        gpu: np.ndarray,
        power_w: np.ndarray,
        sm_active: np.ndarray,
        xid: np.ndarray,
        ecc_dbe: np.ndarray,
        util_gpu_pct: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One batch (NaN: not reported; a sample older than the GPU's latest is ignored; GPU utilization in
        percent, None: not in this feed). Returns the energy of
        each sample since its GPU's previous one (J), the seconds it covers (0: not integrated) and the mask of
        GPUs whose error state changed (a new XID code, the DBE count grew)."""
        gpu = np.asarray(gpu, np.int64)
        newer = time_s > self.time_s[gpu]
        e = np.zeros(len(gpu))
        covered = np.zeros(len(gpu))
        changed = np.zeros(len(gpu), bool)
        if not newer.any():
            return e, covered, changed
        g = gpu[newer]
        p = np.asarray(power_w, float)[newer]
        ok = np.isfinite(p) & (p >= 0)
        dt = time_s - self.time_s[g]
        prev = self.power_w[g]
        use = ok & np.isfinite(prev) & (dt > 0) & (dt <= MAX_GAP_S)
        at = np.flatnonzero(newer)[use]
        e[at] = 0.5 * (prev[use] + p[use]) * dt[use]
        covered[at] = dt[use]
        self.power_w[g[ok]] = p[ok]
        self.power_w[g[~ok]] = np.nan  # not reported now: the next sample does not integrate across it
        sm = np.asarray(sm_active, float)[newer]
        sm = np.where(np.isfinite(sm), np.clip(sm, 0.0, 1.0), np.nan)
        self.sm_active[g] = sm
        self._average(g, dt, p, sm, ok & np.isfinite(sm))
        u = np.full(len(g), np.nan) if util_gpu_pct is None else np.asarray(util_gpu_pct, float)[newer]
        self._average_util(g, dt, np.where(np.isfinite(u), np.clip(u, 0.0, 100.0) / 100.0, np.nan))
        self.time_s[g] = time_s
        x = np.asarray(xid, np.int64)[newer]
        new_xid = (x > 0) & (x != self.xid[g])
        self.xid[g[new_xid]] = x[new_xid]
        self.xid_time_s[g[new_xid]] = time_s
        d = np.asarray(ecc_dbe, float)[newer]
        known = np.isfinite(d)
        grew = known & np.isfinite(self.dbe[g]) & (d > self.dbe[g])
        self.dbe[g[known]] = d[known]
        self.dbe_time_s[g[grew]] = time_s
        changed[np.flatnonzero(newer)] = new_xid | grew
        return e, covered, changed

    def _average(self, g: np.ndarray, dt: np.ndarray, p: np.ndarray, sm: np.ndarray, ok: np.ndarray) -> None:
        """Exponential time averages with weight 1 - exp(-dt / AVERAGE_S) for a sample dt after the previous one
        (the sample stands for the gap before it); a gap over ``MAX_GAP_S`` or a missing value restarts them."""
        prev_p, prev_a = self.power_avg_w[g], self.sm_active_avg[g]
        cont = ok & np.isfinite(prev_p) & np.isfinite(prev_a) & (dt > 0) & (dt <= MAX_GAP_S)
        gap = np.where(cont, dt, 0.0)
        w = np.where(cont, -np.expm1(-gap / AVERAGE_S), 1.0)  # 1: restart from this sample
        self.power_avg_w[g] = np.where(ok, np.where(cont, prev_p, 0.0) * (1.0 - w) + w * p, np.nan)
        self.sm_active_avg[g] = np.where(ok, np.where(cont, prev_a, 0.0) * (1.0 - w) + w * sm, np.nan)
        self.averaged_s[g] = np.where(cont, self.averaged_s[g] + gap, 0.0)

    def _average_util(self, g: np.ndarray, dt: np.ndarray, u: np.ndarray) -> None:
        """``_average`` for GPU utilization, with its own history: a feed without it leaves it NaN."""
        prev = self.util_avg[g]
        ok = np.isfinite(u)
        cont = ok & np.isfinite(prev) & (dt > 0) & (dt <= MAX_GAP_S)
        gap = np.where(cont, dt, 0.0)
        w = np.where(cont, -np.expm1(-gap / AVERAGE_S), 1.0)
        self.util_avg[g] = np.where(ok, np.where(cont, prev, 0.0) * (1.0 - w) + w * u, np.nan)
        self.util_averaged_s[g] = np.where(cont, self.util_averaged_s[g] + gap, 0.0)

    def errors(self, gpus: np.ndarray, now_s: float) -> list[tuple[int, str]]:
        """(GPU, what) for the GPUs with an XID or a DBE growth within ``ERROR_RECENT_S`` of ``now_s``."""
        out = []
        for g in gpus[(now_s - self.xid_time_s[gpus] <= ERROR_RECENT_S)]:
            out.append((int(g), f"XID {int(self.xid[g])}"))
        for g in gpus[(now_s - self.dbe_time_s[gpus] <= ERROR_RECENT_S)]:
            out.append((int(g), f"ECC double-bit errors (volatile total {int(self.dbe[g])})"))
        return sorted(out)


@dataclass(frozen=True)
class Straggler:
    node: int  # node index (inventory order)
    power_ratio: float  # its mean GPU power / the job's median node's
    activity_ratio: float
    kind: str = "idle"  # "idle" (waits outside its GPUs) | "clock" (power lags at equal or higher activity)
    util_ratio: float = float("nan")  # its mean GPU utilization / the median node's (NaN: not reported)


def stragglers(
    meter: GpuMeter, gpus: np.ndarray, node_of: np.ndarray, now_s: float, margin: float = STRAGGLER_MARGIN
) -> Straggler | None:
    """The node of this job its peers wait for (module docstring: its GPU utilization lags the median node by more
    than ``margin``; or its power and SM activity both do; or its power does at equal or higher activity), the
    most lagging such node, or None. Judges only GPUs with fresh samples and ``AVERAGE_S`` of history behind
    their averages; needs two such nodes (two with utilization for the utilization rule)."""
    fresh = now_s - meter.time_s[gpus] <= FRESH_S
    p, a = meter.power_avg_w[gpus], meter.sm_active_avg[gpus]
    ok = fresh & (meter.averaged_s[gpus] >= AVERAGE_S) & np.isfinite(p) & np.isfinite(a)
    if not ok.any():
        return None
    nodes, inv = np.unique(node_of[ok], return_inverse=True)
    if len(nodes) < 2:
        return None
    n = np.bincount(inv, minlength=len(nodes))
    node_p = np.bincount(inv, weights=p[ok], minlength=len(nodes)) / n
    node_a = np.bincount(inv, weights=a[ok], minlength=len(nodes)) / n
    ref_p, ref_a = float(np.median(node_p)), float(np.median(node_a))
    if not (ref_p > 0 and ref_a > 0):
        return None
    rp, ra = node_p / ref_p, node_a / ref_a
    ru = _util_ratios(meter, gpus[ok], inv, len(nodes))
    low_power = rp < 1.0 - margin
    idle = (low_power & (ra < 1.0 - margin)) | (ru < 1.0 - margin)   # NaN ratios compare False
    clock = low_power & (ra >= 1.0) & ~idle
    lag = idle | clock
    if not lag.any():
        return None
    worst = int(np.flatnonzero(lag)[np.argmin(np.fmin(rp, ru)[lag])])
    return Straggler(int(nodes[worst]), float(rp[worst]), float(ra[worst]), "clock" if clock[worst] else "idle",
                     float(ru[worst]))


def _util_ratios(meter: GpuMeter, gpus: np.ndarray, inv: np.ndarray, n_nodes: int) -> np.ndarray:
    """Each node's mean GPU utilization over the median node's (NaN where a node has no averaged utilization, and
    everywhere when fewer than two nodes have one or the median is 0)."""
    u = meter.util_avg[gpus]
    has = np.isfinite(u) & (meter.util_averaged_s[gpus] >= AVERAGE_S)
    k = np.bincount(inv[has], minlength=n_nodes)
    out = np.full(n_nodes, np.nan)
    if (k > 0).sum() < 2:
        return out
    node_u = np.bincount(inv[has], weights=u[has], minlength=n_nodes)[k > 0] / k[k > 0]
    ref = float(np.median(node_u))
    if ref > 0:
        out[k > 0] = node_u / ref
    return out
