"""How the collective model behaves from 1k to 131k GPUs (tree depth, NIC bound, oversubscribed spines).

    python -m twin.fabric.validate_scale [--json]          (make validate-scale)

No published measurement at >= 1k GPUs in text form was found for a system family the catalogue models (the large-
scale results seen -- Meta's RoCE paper, Alibaba HPN, NVIDIA's NCCL blogs -- are plots or relative gains), so this
prints the model's own behaviour and checks it against the physical bounds tests/unit/fabric/test_fabric_scale.py
asserts: the double binary tree's depth ceil(log2 d) for d NVLink domains, the 8-byte all-reduce latency it gives,
the 1 GiB all-reduce bus bandwidth against what the domains' NICs can carry (g B_nic d (n-1) / (n (d-1))), and an
alltoall across 8 leaf groups of 32 nodes at 1:1 .. 8:1 spine oversubscription.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence

import numpy as np

from twin.fabric.domain import estimate, placement_arrays
from twin.fabric.domain.topology import efa, hgx_cluster, infiniband, nvl72_cluster, roce

N_MAX = 131_072
GPUS = (1024, 4096, 16384, 65536, 131072)


def topologies() -> dict:
    return {
        "hgx-h100 NDR IB (8x400G)": hgx_cluster(N_MAX),
        "gb200-nvl72 NDR IB (72x400G)": nvl72_cluster(N_MAX - N_MAX % 72),
        "p5 H100 EFAv2 (32x100G)": hgx_cluster(N_MAX, scale_out=efa(100.0, 4.0)),
        "a100 RoCE (16x100G)": hgx_cluster(N_MAX, nvlink_generation=3, scale_out=roce(100.0, 2.0)),
    }


def evaluate() -> dict:
    out: dict = {"scale": [], "oversubscription": []}
    for name, topo in topologies().items():
        g = topo.scale_up.gpus_per_domain
        b_nic = topo.scale_out.bw_GBps_per_gpu
        for n_req in GPUS:
            d = -(-n_req // g)
            n = d * g
            if n > topo.n_gpus:
                continue
            pl = placement_arrays(topo, n)
            small = estimate(topo, "all_reduce", 8.0, pl)
            big = estimate(topo, "all_reduce", float(1 << 30), pl)
            bound = g * b_nic * d * (n - 1) / (n * (d - 1))
            out["scale"].append({
                "topology": name, "gpus": n, "domains": d, "tree_levels": math.ceil(math.log2(d)),
                "allreduce_8B_us": round(float(small.time_s) * 1e6, 2), "allreduce_8B_algorithm": str(small.algorithm_names()),
                "allreduce_1GiB_busbw_GBps": round(float(big.busbw_GBps), 1), "allreduce_1GiB_algorithm": str(big.algorithm_names()),
                "nic_bound_busbw_GBps": round(bound, 1), "busbw_over_bound": round(float(big.busbw_GBps) / bound, 3)})
    base = None
    for ov in (1.0, 2.0, 4.0, 8.0):
        topo = hgx_cluster(4096, scale_out=infiniband(400.0, nodes_per_leaf=32, n_spines=16, oversubscription=ov))
        pl = placement_arrays(topo, 2048, n_leaf_groups=8, max_nodes_per_leaf_group=32)
        a2a = estimate(topo, "alltoall", float(1 << 30), pl)
        ar = estimate(topo, "all_reduce", float(1 << 30), pl)
        base = base or float(a2a.busbw_GBps)
        out["oversubscription"].append({"oversubscription": ov, "alltoall_1GiB_busbw_GBps": round(float(a2a.busbw_GBps), 2),
                                        "vs_1to1": round(float(a2a.busbw_GBps) / base, 3),
                                        "allreduce_1GiB_busbw_GBps": round(float(ar.busbw_GBps), 1)})
    out["all_within_nic_bound"] = bool(np.all([r["busbw_over_bound"] <= 1 + 1e-9 for r in out["scale"]]))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    report = evaluate()
    if "--json" in args:
        print(json.dumps(report, indent=2))
        return 0
    print("Collective model at 1k-131k GPUs (no >= 1k-GPU published text measurements found to compare with)")
    print(f"{'topology':30s} {'GPUs':>7s} {'domains':>7s} {'levels':>6s} {'8 B all-reduce':>16s} "
          f"{'1 GiB busbw':>12s} {'NIC bound':>10s} {'ratio':>6s}")
    for r in report["scale"]:
        print(f"{r['topology']:30s} {r['gpus']:7d} {r['domains']:7d} {r['tree_levels']:6d} "
              f"{r['allreduce_8B_us']:9.1f} us {r['allreduce_8B_algorithm']:>5s} {r['allreduce_1GiB_busbw_GBps']:8.1f} "
              f"GB/s {r['nic_bound_busbw_GBps']:6.1f} {r['busbw_over_bound']:6.3f}")
    print("alltoall, 2,048 H100 ranks over 8 leaf groups of 32 nodes (NDR, 16 spines):")
    for r in report["oversubscription"]:
        print(f"  {r['oversubscription']:3.0f}:1  alltoall busbw {r['alltoall_1GiB_busbw_GBps']:6.2f} GB/s "
              f"({r['vs_1to1']:.3f} of 1:1)  all-reduce busbw {r['allreduce_1GiB_busbw_GBps']:.1f} GB/s (one flow per rail leaf)")
    print(f"every 1 GiB all-reduce within the NICs' bound: {report['all_within_nic_bound']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
