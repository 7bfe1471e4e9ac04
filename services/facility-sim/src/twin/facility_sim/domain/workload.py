"""Workload mix per node and the GPU activity it produces (the inputs of the power model).

Each node runs one workload kind, drawn once from a `WorkloadMix`:

- idle:          nothing scheduled; activity ≈ 0, idle clocks.
- training:      a synchronous data-parallel job spread over contiguous nodes. Every iteration
                 alternates a compute phase (dense matmul: tensor pipes busy) and a communication
                 phase (NCCL all-reduce: NICs busy, SMs mostly waiting); every few minutes the job
                 writes a checkpoint and the GPUs nearly idle. All nodes of a job share one clock
                 so the whole job swings together (what the grid sees).
- memory_bound:  e.g. LLM decode / inference; HBM-bandwidth bound: ~100 % "GPU utilization" and
                 high SM activity, but little tensor activity and about half the power of dense.

Activity values follow DCGM's profiling ratios (0..1): DCGM_FI_PROF_PIPE_TENSOR_ACTIVE,
DCGM_FI_PROF_SM_ACTIVE, DCGM_FI_PROF_DRAM_ACTIVE; `util_gpu_pct` is DCGM_FI_DEV_GPU_UTIL (share of
time any kernel ran), `comm` the share of NIC line rate in use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# node workload kinds
IDLE, TRAINING, MEMORY_BOUND = 0, 1, 2
# per-tick phases
PH_IDLE, PH_DENSE, PH_MEMORY, PH_COMM, PH_CHECKPOINT = 0, 1, 2, 3, 4
PHASE_NAMES = ("idle", "dense", "memory", "comm", "checkpoint")

# Activity per phase: tensor_active, sm_active, dram_active, util_gpu_pct, comm (share of NIC rate)
PHASE_ACTIVITY = np.array([
    [0.00, 0.00, 0.00, 0.0, 0.00],    # idle
    [0.85, 0.97, 0.35, 100.0, 0.03],  # dense matmul (compute phase of training)
    [0.05, 0.92, 0.88, 100.0, 0.02],  # memory-bound kernels
    [0.02, 0.30, 0.25, 100.0, 0.85],  # communication phase: NCCL kernels hold a few SMs, NICs busy
    [0.00, 0.03, 0.05, 8.0, 0.10],    # checkpoint: GPUs wait on storage
])
# Phases that run at boost clocks (the others sit at idle clocks).
PHASE_ACTIVE = np.array([False, True, True, True, False])


@dataclass(frozen=True)
class WorkloadMix:
    idle: float = 0.15
    training: float = 0.60
    memory_bound: float = 0.25
    job_nodes: tuple[int, ...] = (1, 2, 4, 8, 16, 32)   # training job sizes (nodes), drawn uniformly
    iteration_s: tuple[float, float] = (3.0, 12.0)       # iteration period range
    comm_fraction: tuple[float, float] = (0.15, 0.35)    # share of an iteration spent communicating
    checkpoint_every_s: tuple[float, float] = (300.0, 900.0)
    checkpoint_s: tuple[float, float] = (10.0, 30.0)
    activity_jitter: float = 0.03                        # relative per-GPU per-tick noise

    def __post_init__(self) -> None:
        total = self.idle + self.training + self.memory_bound
        if not np.isclose(total, 1.0) or min(self.idle, self.training, self.memory_bound) < 0:
            raise ValueError(f"workload fractions must be ≥0 and sum to 1, got {total}")


@dataclass(frozen=True, eq=False)
class NodeWorkloads:
    """Per-node workload parameters (arrays of length n_nodes); training nodes of a job share values."""

    kind: np.ndarray             # int8: IDLE / TRAINING / MEMORY_BOUND
    job: np.ndarray              # int64 job index, -1 when not training
    iteration_s: np.ndarray
    comm_fraction: np.ndarray
    phase_offset_s: np.ndarray
    checkpoint_every_s: np.ndarray
    checkpoint_s: np.ndarray
    checkpoint_offset_s: np.ndarray


def assign_workloads(n_nodes: int, mix: WorkloadMix, rng: np.random.Generator) -> NodeWorkloads:
    """Cut the node list into contiguous blocks (training jobs, inference nodes, idle nodes)."""
    kind = np.empty(n_nodes, dtype=np.int8)
    job = np.full(n_nodes, -1, dtype=np.int64)
    it = np.zeros(n_nodes)
    cf = np.zeros(n_nodes)
    off = np.zeros(n_nodes)
    ck_every = np.full(n_nodes, np.inf)
    ck_len = np.zeros(n_nodes)
    ck_off = np.zeros(n_nodes)
    probs = np.array([mix.idle, mix.training, mix.memory_bound])
    i, n_jobs = 0, 0
    while i < n_nodes:
        k = int(rng.choice(3, p=probs))
        size = int(rng.choice(mix.job_nodes)) if k == TRAINING else int(rng.integers(1, 5))
        j = min(n_nodes, i + size)
        kind[i:j] = k
        if k == TRAINING:
            job[i:j] = n_jobs
            n_jobs += 1
            period = rng.uniform(*mix.iteration_s)
            every = rng.uniform(*mix.checkpoint_every_s)
            it[i:j] = period
            cf[i:j] = rng.uniform(*mix.comm_fraction)
            off[i:j] = rng.uniform(0.0, period)
            ck_every[i:j] = every
            ck_len[i:j] = rng.uniform(*mix.checkpoint_s)
            ck_off[i:j] = rng.uniform(0.0, every)
        i = j
    return NodeWorkloads(kind, job, it, cf, off, ck_every, ck_len, ck_off)


def node_phases(w: NodeWorkloads, t_s: float) -> np.ndarray:
    """Phase of every node at simulation time `t_s` (seconds since start), int8 array."""
    phase = np.full(w.kind.shape, PH_IDLE, dtype=np.int8)
    phase[w.kind == MEMORY_BOUND] = PH_MEMORY
    train = w.kind == TRAINING
    if train.any():
        period = w.iteration_s[train]
        pos = np.mod(t_s + w.phase_offset_s[train], period) / period
        p = np.where(pos >= 1.0 - w.comm_fraction[train], PH_COMM, PH_DENSE).astype(np.int8)
        in_ckpt = np.mod(t_s + w.checkpoint_offset_s[train], w.checkpoint_every_s[train]) < w.checkpoint_s[train]
        p[in_ckpt] = PH_CHECKPOINT
        phase[train] = p
    return phase


@dataclass(frozen=True, eq=False)
class GpuActivity:
    tensor_active: np.ndarray
    sm_active: np.ndarray
    dram_active: np.ndarray
    util_gpu_pct: np.ndarray
    busy: np.ndarray             # bool: runs at boost clocks
    node_comm: np.ndarray        # per node: share of NIC line rate in use


def gpu_activity(phase: np.ndarray, gpu_node: np.ndarray, jitter: float, rng: np.random.Generator) -> GpuActivity:
    """Per-GPU activity from per-node phases, with small multiplicative jitter (clipped to 0..1)."""
    gpu_phase = phase[gpu_node]
    base = PHASE_ACTIVITY[gpu_phase]                       # (n_gpus, 5)
    noise = 1.0 + jitter * rng.standard_normal((gpu_phase.shape[0], 3))
    act = np.clip(base[:, :3] * noise, 0.0, 1.0)
    node_comm = PHASE_ACTIVITY[phase, 4]
    return GpuActivity(act[:, 0], act[:, 1], act[:, 2], base[:, 3].copy(), PHASE_ACTIVE[gpu_phase], node_comm)
