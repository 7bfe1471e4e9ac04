"""Benchmark of the pure collective model: `python -m bench fabric_core` -> bench/results/fabric_core.json.

Measures (single thread) vectorized estimates per second over >= 1,000,000 (size x collective x
placement) evaluations, single estimates on a 100,000-GPU topology including placement building for
all 100k GPU ids, and a same-run numpy baseline (a*b+c over the same array length).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services" / "fabric" / "src"))

from twin.fabric.domain import (  # noqa: E402
    COLLECTIVES,
    MOE_KERNELS,
    estimate,
    moe_times,
    placement_arrays,
    placement_from_gpu_ids,
    placement_packed,
    preset,
)

RESULTS = ROOT / "bench" / "results" / "fabric_core.json"


def _best_of(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> dict:
    topo = preset("dgx-h100", 4096)
    sizes = np.logspace(0, 10, 10_000)
    colls = np.arange(len(COLLECTIVES), dtype=np.int8)
    pls = placement_packed(topo, np.array([2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8, 64, 512]))
    n_pl = pls.shape[0]
    c3, s3, p3 = colls[:, None, None], sizes[None, :, None], pls.reshape(1, 1, n_pl)
    n_eval = len(colls) * len(sizes) * n_pl
    t_batch = _best_of(lambda: estimate(topo, c3, s3, p3))

    a, b, c = (np.random.default_rng(0).random(n_eval) for _ in range(3))
    t_np = _best_of(lambda: a * b + c, repeat=5)

    big = preset("dgx-h100", 100_000)
    ids = np.arange(big.n_gpus)

    def one(collective: str) -> None:
        pl = placement_from_gpu_ids(big, ids)
        estimate(big, collective, 2**30, pl)

    t_ar = _best_of(lambda: one("all_reduce"), repeat=5)
    t_a2a = _best_of(lambda: one("alltoall"), repeat=5)
    # MoE dispatch + combine: kernels x tokens-per-rank x EP group sizes, one vectorized call
    tokens = np.unique(np.logspace(0, 15, 20_000, base=2.0).astype(np.int64))
    ep = placement_arrays(topo, np.array([8, 16, 32, 64, 128, 256, 512, 1024]))
    kern = np.array(MOE_KERNELS)[:, None, None]
    n_moe = len(MOE_KERNELS) * tokens.size * ep.shape[0]
    t_moe = _best_of(lambda: moe_times(topo, kern, tokens[None, :, None], 7168, 8, 1024,
                                       placement=ep.reshape(1, 1, -1), max_nodes_per_token=4))
    result = {
        "moe_cases": n_moe,
        "moe_cases_per_s": n_moe / t_moe,
        "evaluations": n_eval,
        "estimates_per_s": n_eval / t_batch,
        "batch_s": t_batch,
        "allreduce_100k_gpu_ms": t_ar * 1e3,
        "alltoall_100k_gpu_ms": t_a2a * 1e3,
        "baseline_numpy_ops_per_s": n_eval / t_np,
        "ratio_to_numpy_baseline": (n_eval / t_batch) / (n_eval / t_np),
        "threads": 1,
        "numpy": np.__version__,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"fabric_core: {n_eval:,} estimates in {t_batch * 1e3:.1f} ms = {result['estimates_per_s']:,.0f}/s "
          f"(numpy a*b+c baseline {result['baseline_numpy_ops_per_s']:,.0f}/s, ratio {result['ratio_to_numpy_baseline']:.4f}); "
          f"100k-GPU all_reduce {result['allreduce_100k_gpu_ms']:.2f} ms, alltoall {result['alltoall_100k_gpu_ms']:.2f} ms "
          f"(targets: >= 1,000,000/s, <= 10 ms); MoE dispatch+combine {result['moe_cases_per_s']:,.0f} cases/s")
    return result


if __name__ == "__main__":
    main()
