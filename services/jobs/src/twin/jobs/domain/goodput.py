"""Goodput of a training job: useful work after checkpoint overhead, failures and restarts (vectorized).

Failures: a job on N GPUs fails at rate N / MTBF_gpu (independent GPU-attributed interruptions; node, network
and software interruptions folded into the per-GPU figure, as the Llama 3 report counts them). Default per-GPU
MTBF: 419 unexpected interruptions in 54 days on 16,384 H100 GPUs (Dubey et al. 2024, "The Llama 3 Herd of
Models", sec. 3.3.4) -> 16,384 x 54 x 24 / 419 = 50,680 GPU-hours.

Checkpointing every ``interval_s`` of work costs ``checkpoint_s`` (a synchronous write); a failure loses on
average half an interval of work plus the restart time. To first order (Young 1974; Daly 2006, "A higher
order estimate of the optimum checkpoint interval for restart dumps", FGCS 22):

    waste fraction = checkpoint_s / interval_s + (interval_s / 2 + checkpoint_s / 2 + restart_s) / mtbf_job_s
    goodput        = 1 - waste fraction (>= 0)

Young's optimum interval is sqrt(2 checkpoint_s mtbf_job_s); Daly's higher-order optimum is
sqrt(2 d M) [1 + sqrt(d / 2M) / 3 + d / 18M] - d for d < 2M, else M (d = checkpoint_s, M = mtbf_job_s).
"""

from __future__ import annotations

import numpy as np

#: per-GPU mean time between job-interrupting failures, hours (Llama 3 report, see module docstring)
DEFAULT_GPU_MTBF_H = 16384 * 54 * 24 / 419


def job_mtbf_s(n_gpus: np.ndarray | int, gpu_mtbf_h: float = DEFAULT_GPU_MTBF_H) -> np.ndarray:
    """Mean time between failures of a job on ``n_gpus`` GPUs, seconds."""
    n = np.asarray(n_gpus, dtype=np.float64)
    if (n < 1).any() or not gpu_mtbf_h > 0:
        raise ValueError("n_gpus must be >= 1 and gpu_mtbf_h > 0")
    return gpu_mtbf_h * 3600.0 / n


def failures_per_day(n_gpus: np.ndarray | int, gpu_mtbf_h: float = DEFAULT_GPU_MTBF_H) -> np.ndarray:
    return 86400.0 / job_mtbf_s(n_gpus, gpu_mtbf_h)


def young_interval_s(checkpoint_s: np.ndarray | float, mtbf_s: np.ndarray | float) -> np.ndarray:
    """Young's optimal checkpoint interval sqrt(2 d M)."""
    return np.sqrt(2.0 * np.asarray(checkpoint_s, dtype=np.float64) * np.asarray(mtbf_s, dtype=np.float64))


def daly_interval_s(checkpoint_s: np.ndarray | float, mtbf_s: np.ndarray | float) -> np.ndarray:
    """Daly's higher-order optimal checkpoint interval."""
    d = np.asarray(checkpoint_s, dtype=np.float64)
    m = np.asarray(mtbf_s, dtype=np.float64)
    if (d < 0).any() or (m <= 0).any():
        raise ValueError("checkpoint_s must be >= 0 and mtbf_s > 0")
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.sqrt(2.0 * d * m) * (1.0 + np.sqrt(d / (2.0 * m)) / 3.0 + d / (18.0 * m)) - d
    return np.where(d < 2.0 * m, tau, m)


def goodput_fraction(interval_s: np.ndarray | float, checkpoint_s: np.ndarray | float,
                     restart_s: np.ndarray | float, mtbf_s: np.ndarray | float) -> np.ndarray:
    """Useful fraction of wall time (0..1) for a checkpoint interval (see module docstring)."""
    tau = np.asarray(interval_s, dtype=np.float64)
    d = np.asarray(checkpoint_s, dtype=np.float64)
    r = np.asarray(restart_s, dtype=np.float64)
    m = np.asarray(mtbf_s, dtype=np.float64)
    if (tau <= 0).any() or (d < 0).any() or (r < 0).any() or (m <= 0).any():
        raise ValueError("interval_s and mtbf_s must be > 0, checkpoint_s and restart_s >= 0")
    waste = d / tau + (tau / 2.0 + d / 2.0 + r) / m
    return np.clip(1.0 - waste, 0.0, 1.0)


def goodput_tokens_per_s(tokens_per_s: np.ndarray | float, n_gpus: np.ndarray | int, interval_s, checkpoint_s,
                         restart_s, gpu_mtbf_h: float = DEFAULT_GPU_MTBF_H) -> np.ndarray:
    """Tokens per second of useful training after checkpoints, failures and restarts."""
    m = job_mtbf_s(n_gpus, gpu_mtbf_h)
    return np.asarray(tokens_per_s, dtype=np.float64) * goodput_fraction(interval_s, checkpoint_s, restart_s, m)
