"""Requested hardware faults the simulator plays: a straggler node and a sick GPU (pure numpy, no I/O).

Straggler node (``Straggler``): from ``start_s`` one node of a synchronous training job is slow, and since every
data-parallel step ends in a collective that waits for the last rank, the whole job's iteration period becomes
``factor`` x its healthy period (the slowest node sets the step). Two causes, different on the GPUs:

- ``host``:  the node's host is slow (CPU throttled, data loader or kernel-launch stalls): its GPUs sit idle
             waiting for work for (factor - 1) healthy periods per step, then compute and communicate as
             before. The other nodes compute at full speed and wait for it inside the collective (NCCL kernels
             spinning: the communication phase's activity). Its GPUs' power AND SM activity are below its peers'.
- ``power``: the node's GPUs run at a lowered SM clock (a power brake: e.g. a failed PSU, or a power / thermal
             slowdown). The compute phase of a step stretches by f_max / f, the clock that makes the step
             factor x longer: f / f_max = (1 - c) / (factor - c) for a communication share c of the healthy step
             (communication is not clock-bound). Its power is below its peers', its SM activity ABOVE theirs
             (it is busy longer; they wait).

Sick GPU (``SickGpu``), from ``start_s``, by the XID it reports (meanings from NVIDIA's "XID Errors" catalogue,
https://docs.nvidia.com/deploy/xid-errors/ , and the GPU memory error management guide,
https://docs.nvidia.com/deploy/a100-gpu-mem-error-mgmt/ ):

- XID 92 "High single-bit ECC error rate": correctable errors; the hardware corrects them, the job runs on at its
  speed. The GPU's volatile SBE count rises (``SICK_SBE_PER_S``).
- XID 48 "DBE (Double Bit ECC Error)" and XID 94 "Contained ECC error": an uncorrectable memory error; the
  application that touched the memory gets a CUDA error and dies (94: only that application, the GPU stays up),
  so the job fails ``FAIL_DETECT_S`` later with cause GPU XID. SBE counts rise first, the DBE count grows by one.
- XID 79 "GPU has fallen off the bus": the GPU no longer answers; the job's other ranks block in their next
  collective until the NCCL watchdog aborts them (``NCCL_TIMEOUT_S``), then the job fails. The fallen GPU draws
  idle power meanwhile (simplification: a real exporter reads nothing from it).

A failed job's nodes are idle afterwards (no requeue is simulated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.facility_sim.domain.workload import PH_CHECKPOINT, PH_COMM, PH_DENSE, PH_IDLE, NodeWorkloads

HOST, POWER = "host", "power"
CAUSES = (HOST, POWER)
XID_HIGH_SBE_RATE, XID_DBE, XID_CONTAINED_ECC, XID_OFF_BUS = 92, 48, 94, 79
FATAL_XIDS = frozenset({XID_DBE, XID_CONTAINED_ECC})      # the application dies at once
SUPPORTED_XIDS = (XID_HIGH_SBE_RATE, XID_DBE, XID_CONTAINED_ECC, XID_OFF_BUS)
MEMORY_XIDS = frozenset({XID_HIGH_SBE_RATE, XID_DBE, XID_CONTAINED_ECC})
#: Correctable errors per second on a GPU with a failing HBM row (assumption, stated: XID 92 is raised for a
#: "high" single-bit rate; one a second is far above the background ``P_ECC_SBE_PER_TICK`` yet a plausible
#: rate for a weak row under a training job's constant memory traffic).
SICK_SBE_PER_S = 1.0
#: Seconds from an uncorrectable error to the job's failure (assumption, stated: the rank's next CUDA call
#: returns the error at once; torchrun / Slurm tear the job down within a few seconds).
FAIL_DETECT_S = 5.0
#: PyTorch's default NCCL process-group timeout, after which the watchdog aborts ranks blocked in a collective
#: (torch.distributed.init_process_group: "timeout ... default 10 minutes for NCCL").
NCCL_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Straggler:
    node: int                 # node index (simulated slice)
    job: int                  # its training job (workload job index)
    factor: float             # the job's step time x this from start_s (> 1)
    cause: str = HOST
    start_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.factor > 1.0:
            raise ValueError(f"straggler factor must be > 1, got {self.factor}")
        if self.cause not in CAUSES:
            raise ValueError(f"straggler cause must be one of {CAUSES}, got {self.cause!r}")


@dataclass(frozen=True)
class SickGpu:
    gpu: int                  # GPU index (simulated slice)
    node: int
    job: int                  # its training job, -1 when the node runs none
    xid: int = XID_CONTAINED_ECC
    start_s: float = 0.0

    def __post_init__(self) -> None:
        if self.xid not in SUPPORTED_XIDS:
            raise ValueError(f"sick GPU XID must be one of {SUPPORTED_XIDS}, got {self.xid}")

    @property
    def fail_s(self) -> float | None:
        """When its job fails (None: it does not)."""
        if self.job < 0:
            return None
        if self.xid in FATAL_XIDS:
            return self.start_s + FAIL_DETECT_S
        if self.xid == XID_OFF_BUS:
            return self.start_s + NCCL_TIMEOUT_S
        return None


@dataclass(frozen=True)
class Faults:
    """The requested faults of one run (at most one straggler and one sick GPU)."""

    straggler: Straggler | None = None
    sick: SickGpu | None = None

    def __bool__(self) -> bool:
        return self.straggler is not None or self.sick is not None

    # -- a job's progress --------------------------------------------------------------------------------
    def _factor(self, job: int) -> Straggler | None:
        s = self.straggler
        return s if s is not None and s.job == job else None

    def iterations(self, w: NodeWorkloads, node: int, t_s: float) -> float:
        """Iterations the node's job has completed at ``t_s`` (fractional; the healthy schedule, stretched by a
        straggler from its start, frozen while a fallen GPU hangs the job)."""
        period = float(w.iteration_s[node])
        off = float(w.phase_offset_s[node])
        job = int(w.job[node])
        sick = self.sick
        if sick is not None and sick.job == job and sick.xid == XID_OFF_BUS:
            t_s = min(t_s, sick.start_s)  # no step completes after the GPU fell off the bus
        s = self._factor(job)
        if s is None or t_s <= s.start_s:
            return (t_s + off) / period
        return (s.start_s + off) / period + (t_s - s.start_s) / (s.factor * period)

    def period_s(self, w: NodeWorkloads, node: int, t_s: float) -> float:
        s = self._factor(int(w.job[node]))
        period = float(w.iteration_s[node])
        return period * s.factor if s is not None and t_s >= s.start_s else period

    def failed_s(self, job: int) -> float | None:
        """When this job fails (None: it does not)."""
        sick = self.sick
        return sick.fail_s if sick is not None and sick.job == job else None

    def hung(self, job: int, t_s: float) -> bool:
        """The job makes no progress at ``t_s`` (a fallen GPU, before the watchdog aborts it)."""
        sick = self.sick
        return (sick is not None and sick.job == job and sick.xid == XID_OFF_BUS
                and sick.start_s <= t_s < (sick.fail_s or np.inf))

    # -- physics ----------------------------------------------------------------------------------------
    def phases(self, w: NodeWorkloads, phase: np.ndarray, t_s: float) -> np.ndarray:
        """The per-node phases of ``node_phases`` with the faults in force at ``t_s`` (a new array)."""
        phase = phase.copy()
        s = self.straggler
        if s is not None and t_s >= s.start_s:
            nodes = np.flatnonzero(w.job == s.job)
            pos = np.mod(np.array([self.iterations(w, int(n), t_s) for n in nodes]), 1.0)
            cf = w.comm_fraction[nodes]
            k = s.factor
            p = np.where(pos < (1.0 - cf) / k, PH_DENSE, PH_COMM).astype(np.int8)   # peers wait in the collective
            me = nodes == s.node
            if s.cause == HOST:   # idle (waiting for its host), then compute, then the collective
                p[me] = np.where(pos[me] < (k - 1.0) / k, PH_IDLE,
                                 np.where(pos[me] < 1.0 - cf[me] / k, PH_DENSE, PH_COMM))
            else:                 # compute at the lowered clock, then the collective
                p[me] = np.where(pos[me] < 1.0 - cf[me] / k, PH_DENSE, PH_COMM)
            keep = phase[nodes] == PH_CHECKPOINT
            phase[nodes] = np.where(keep, PH_CHECKPOINT, p)
        sick = self.sick
        if sick is not None and sick.job >= 0 and t_s >= sick.start_s:
            nodes = w.job == sick.job
            fail = sick.fail_s
            if fail is not None and t_s >= fail:
                phase[nodes] = PH_IDLE
            elif self.hung(sick.job, t_s):
                phase[nodes] = PH_COMM  # every rank blocked in a collective (NCCL kernels spinning)
        return phase

    def straggler_clock_ratio(self, w: NodeWorkloads) -> float | None:
        """f / f_max of a power-limited straggler's GPUs (None: no such straggler)."""
        s = self.straggler
        if s is None or s.cause != POWER:
            return None
        cf = float(w.comm_fraction[s.node])
        return (1.0 - cf) / (s.factor - cf)

    def gpu_errors(self, t_s: float, dt_s: float, sbe: np.ndarray, dbe: np.ndarray, xid: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(SBE, DBE, last XID) after this tick with the sick GPU's errors (arrays updated in place and returned)."""
        sick = self.sick
        if sick is None or t_s < sick.start_s:
            return sbe, dbe, xid
        g = sick.gpu
        if sick.xid in MEMORY_XIDS:
            sbe[g] += np.uint64(max(1, round(SICK_SBE_PER_S * dt_s)))
        if int(xid[g]) != sick.xid:  # the first tick of the fault: the event is logged once
            if sick.xid in FATAL_XIDS:
                dbe[g] += np.uint64(1)
            xid[g] = np.uint64(sick.xid)
        return sbe, dbe, xid

    def fallen_gpu(self, t_s: float) -> int | None:
        sick = self.sick
        return sick.gpu if sick is not None and sick.xid == XID_OFF_BUS and t_s >= sick.start_s else None


def pick_straggler(w: NodeWorkloads, node_ids: list[str], gpu_uncapped: np.ndarray, request: str, *,
                   factor: float, cause: str = HOST, start_s: float = 0.0) -> Straggler:
    """``request``: a node id of a multi-node training job, or ``auto`` (the last uncapped node of the largest
    multi-node job; the cap of an already capped node would blur the cause). ``gpu_uncapped`` per node."""
    sizes = {int(j): int((w.job == j).sum()) for j in np.unique(w.job[w.job >= 0])}
    if request == "auto":
        multi = sorted((j for j, n in sizes.items() if n >= 2), key=lambda j: (-sizes[j], j))
        if not multi:
            raise ValueError("straggler_node: auto needs a training job on two nodes or more (none simulated)")
        nodes = np.flatnonzero(w.job == multi[0])
        free = [int(n) for n in nodes if gpu_uncapped[n]]
        node = free[-1] if free else int(nodes[-1])
    else:
        if request not in node_ids:
            raise ValueError(f"straggler_node: {request!r} is not a simulated node")
        node = node_ids.index(request)
        if w.job[node] < 0 or sizes[int(w.job[node])] < 2:
            raise ValueError(f"straggler_node: {request!r} runs no training job on two nodes or more "
                             "(a straggler needs peers to hold up)")
    return Straggler(node, int(w.job[node]), factor, cause, start_s)


def pick_sick_gpu(w: NodeWorkloads, node_ids: list[str], node_first_gpu: np.ndarray, node_gpus: np.ndarray,
                  request: str, *, xid: int, start_s: float = 0.0, avoid_job: int = -1) -> SickGpu:
    """``request``: ``<node id>/gpu<k>`` (k: the GPU's index in the node) or ``auto`` (GPU 3, or the node's last,
    of the first node of the largest training job other than ``avoid_job``: the straggler's)."""
    if request == "auto":
        jobs = [int(j) for j in np.unique(w.job[w.job >= 0])]
        if not jobs:
            raise ValueError("sick_gpu: auto needs a training job (none simulated)")
        sizes = {j: int((w.job == j).sum()) for j in jobs}
        job = sorted(jobs, key=lambda j: (j == avoid_job, -sizes[j], j))[0]
        node = int(np.flatnonzero(w.job == job)[0])
        local = min(3, int(node_gpus[node]) - 1)
    else:
        node_id, sep, k = request.rpartition("/gpu")
        if not sep or node_id not in node_ids or not k.isdigit():
            raise ValueError(f"sick_gpu: {request!r} is not '<simulated node id>/gpu<k>'")
        node, local = node_ids.index(node_id), int(k)
        if local >= int(node_gpus[node]):
            raise ValueError(f"sick_gpu: {node_id} has {int(node_gpus[node])} GPUs, no gpu{local}")
    return SickGpu(int(node_first_gpu[node]) + local, node, int(w.job[node]), xid, start_s)
